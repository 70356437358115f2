// Drives kgate's web console (/ui/) in Debian's Chromium through playwright-core, as an operator
// and as a viewer, the way tests/integration/failover/test_console.py asks (argv[2]: JSON spec
// {admin, operator, viewer, vcluster, primary, secondary, shots, chromium}). Prints one JSON event
// per line: {"step": NAME, "t": unix seconds, ...}; the last line is {"step": "done", ...}.
// Any failed expectation throws: the script exits 1 with the error and a screenshot of the page.
'use strict';
const path = require('path');
const { chromium } = require('playwright-core');

const spec = JSON.parse(process.argv[2]);
const shots = [];
const LONG = 120000;

function emit(step, extra = {}) {
  console.log(JSON.stringify({ step, t: Date.now() / 1000, ...extra }));
}

async function shot(page, name) {
  const file = path.join(spec.shots, name + '.png');
  await page.screenshot({ path: file, fullPage: true });
  shots.push(file);
}

async function login(browser, token, viewport) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.on('pageerror', e => emit('pageerror', { error: String(e) }));
  page.on('console', m => { if (m.type() === 'error') emit('console', { text: m.text() }); });
  await page.goto(spec.admin + '/ui/');
  await page.locator('#login').waitFor({ state: 'visible' });
  await page.fill('#token', token);
  await page.click('#login-form button[type=submit]');
  await page.locator(`#vc-table tbody tr[data-vcluster="${spec.vcluster}"]`).waitFor({ timeout: LONG });
  return { context, page };
}

function row(page) {
  return page.locator(`#vc-table tbody tr[data-vcluster="${spec.vcluster}"]`);
}

async function waitActive(page, name) {
  await page.waitForFunction(([vc, want]) => {
    const cell = document.querySelector(`#vc-table tbody tr[data-vcluster="${vc}"] td[data-field=active]`);
    return cell && cell.textContent === want;
  }, [spec.vcluster, name], { timeout: LONG });
}

// Presses the switch button, checks the dialog (target named, parity shown), confirms with a
// reason and waits for the timeline to show the first request on the new side.
async function switchTo(page, target, verb, reason, shotName) {
  const button = row(page).locator('button.switch');
  await button.waitFor({ state: 'visible' });
  const label = await button.textContent();
  if (label !== `${verb} to ${target}`) throw new Error(`switch button says "${label}"`);
  await button.click();
  await page.locator('#switch-dialog').waitFor({ state: 'visible' });
  const title = await page.textContent('#switch-title');
  if (!title.includes(target)) throw new Error(`dialog title "${title}" does not name ${target}`);
  await page.waitForFunction(() => /Parity with|Parity check/.test(
    document.querySelector('#switch-parity').textContent), null, { timeout: LONG });
  const parity = await page.textContent('#switch-parity');
  if (shotName) await shot(page, shotName);
  await page.fill('#switch-reason', reason);
  const before = Date.now() / 1000;
  await page.click('#switch-confirm');
  await page.locator('#timeline li.first-request').waitFor({ timeout: LONG });
  await waitActive(page, target);
  const timeline = await page.locator('#timeline li').allTextContents();
  return { parity, timeline, before };
}

// An admin adds a user and an ACL binding in Users & ACLs, then removes both.
async function admin(browser, viewport) {
  const { page } = await login(browser, spec.adminToken, viewport);
  page.on('dialog', d => d.accept()); // "Remove user ...?"
  await page.click('.tab[data-tab=security]');
  const form = page.locator('#user-form');
  await form.locator('input[name=name]').fill('ui-alice');
  await form.locator('input[name=password]').fill('ui-alice-password-1');
  await form.locator('button[type=submit]').click();
  const userButton = page.locator('#users-table button[data-user="ui-alice"]');
  await userButton.waitFor({ timeout: LONG });
  await page.click('#acl-form button[type=submit]'); // the template: User:alice may read orders
  const aclButton = page.locator('#acls-table button.acl-remove');
  await aclButton.first().waitFor({ timeout: LONG });
  const users = await page.locator('#users-table tbody tr').allTextContents();
  const acls = await page.locator('#acls-table tbody tr').allTextContents();
  await shot(page, 'users-acls');
  await aclButton.first().click();
  await page.waitForFunction(() => !document.querySelector('#acls-table button.acl-remove'),
                             null, { timeout: LONG });
  await userButton.click();
  await userButton.waitFor({ state: 'detached', timeout: LONG });
  emit('admin', { users, acls });
  await page.context().close();
}

// The fleet's instances on the overview (a kgate whose state is in PostgreSQL).
async function fleet(browser, viewport) {
  const { page } = await login(browser, spec.operator, viewport);
  await page.locator('#fleet').waitFor({ state: 'visible', timeout: LONG });
  await page.waitForFunction(n => document.querySelectorAll('#fleet-table tbody tr').length === n,
                             spec.instances, { timeout: LONG });
  const rows = await page.locator('#fleet-table tbody tr').allTextContents();
  await shot(page, 'overview-fleet');
  emit('fleet', { rows });
  emit('done', { shots });
}

async function main() {
  const browser = await chromium.launch({
    executablePath: spec.chromium, headless: true,
    // As root (CI) Chromium refuses to start without --no-sandbox.
    args: process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [],
  });
  try {
    const desktop = { width: 1280, height: 860 };
    if (spec.mode === 'fleet') return await fleet(browser, desktop);
    const { page } = await login(browser, spec.operator, desktop);
    const who = await page.textContent('#whoami');
    emit('login', { who });
    await shot(page, 'overview-desktop');

    let r = await switchTo(page, spec.secondary, 'Fail over', 'console test failover', 'switch-dialog');
    emit('failover', r);
    await shot(page, 'overview-after-failover');
    r = await switchTo(page, spec.primary, 'Fail back', 'console test failback');
    emit('failback', r);

    await page.click('.tab[data-tab=charts]');
    await page.locator('#chart-list canvas').first().waitFor({ timeout: LONG });
    // Two points at least (one interval apart): a line, not a dot.
    await page.waitForFunction(() => /\(([2-9]|\d\d+) points\)/.test(
      document.querySelector('#chart-list h3').textContent), null, { timeout: LONG });
    emit('charts', { title: await page.textContent('#chart-list h3'),
                     canvases: await page.locator('#chart-list canvas').count() });
    await shot(page, 'charts-desktop');

    await page.click('.tab[data-tab=chaos]');
    const form = page.locator('#chaos-form');
    await form.locator('input[name=type]').fill('latency');
    await form.locator('select[name=vcluster]').selectOption(spec.vcluster);
    await form.locator('input[name=topic]').fill('console-none-.*');
    await form.locator('input[name=for]').fill('10m');
    await form.locator('textarea[name=params]').fill('{"delay_ms": 1}');
    await form.locator('button[type=submit]').click();
    const ruleButton = page.locator('#chaos-table button[data-rule]');
    await ruleButton.waitFor({ timeout: LONG });
    const ruleId = await ruleButton.getAttribute('data-rule');
    emit('chaos-added', { id: ruleId, row: await page.locator('#chaos-table tbody tr').first().textContent() });
    await shot(page, 'chaos');
    await ruleButton.click();
    await page.locator(`#chaos-table button[data-rule="${ruleId}"]`).waitFor({ state: 'detached', timeout: LONG });
    emit('chaos-removed', { id: ruleId });

    await page.click('.tab[data-tab=audit]');
    await page.locator('#audit-table tr[data-type=switch]').first().waitFor({ timeout: LONG });
    await page.waitForFunction(() => /intact/.test(document.querySelector('#audit-verify').textContent),
                               null, { timeout: LONG });
    emit('audit', { verify: await page.textContent('#audit-verify'),
                    switches: await page.locator('#audit-table tr[data-type=switch] td.details').allTextContents() });
    await shot(page, 'audit');

    await page.click('.tab[data-tab=experiments]');
    await page.locator('#exp-table thead th').first().waitFor();
    const drill = page.locator('#exp-form textarea[name=drill]');
    await page.waitForFunction(() => document.querySelector('#exp-form textarea').value !== '');
    const template = JSON.parse(await drill.inputValue());
    template.name = 'console drill';
    template.duration = '10m';
    template.baseline = '1s';
    template.rules = [{ type: 'latency', delay_ms: 1, topic: 'console-none-.*' }];
    await drill.fill(JSON.stringify(template));
    await page.click('#exp-form button[type=submit]');
    await page.waitForFunction(() => /— live/.test(document.querySelector('#exp-title').textContent),
                               null, { timeout: LONG });
    const expId = (await page.textContent('#exp-title')).split(' ')[0];
    // Watching: the record on screen follows the experiment to its running phase.
    await page.waitForFunction(() => /"status": "running"/.test(document.querySelector('#exp-body').textContent),
                               null, { timeout: LONG });
    await shot(page, 'experiments');
    const expRow = page.locator('#exp-table tbody tr', { hasText: expId });
    await expRow.locator('button', { hasText: 'Stop' }).click();
    await page.waitForFunction(() => /"status": "stopped"/.test(document.querySelector('#exp-body').textContent),
                               null, { timeout: LONG });
    await expRow.locator('button', { hasText: 'Report' }).click();
    await page.waitForFunction(() => /— report/.test(document.querySelector('#exp-title').textContent) &&
                               /"hypothesis"/.test(document.querySelector('#exp-body').textContent),
                               null, { timeout: LONG });
    emit('experiment', { id: expId, report: JSON.parse(await page.textContent('#exp-body')) });
    // Drills: the one the test recorded with `kgate drill run` is listed; its report opens.
    await page.click('.tab[data-tab=drills]');
    const drillRow = page.locator('#drill-table tbody tr', { hasText: spec.drill });
    await drillRow.waitFor({ timeout: LONG });
    await drillRow.locator('button', { hasText: 'Report' }).click();
    await page.waitForFunction(() => /## 6\. Re-test result/.test(document.querySelector('#drill-body').textContent),
                               null, { timeout: LONG });
    emit('drills', { row: await drillRow.textContent(), report: await page.textContent('#drill-body') });
    await shot(page, 'drills');
    await page.click('.tab[data-tab=security]');
    await page.locator('#users-table thead th').first().waitFor();
    // An operator sees the lists, not the admin forms.
    const operatorSeesUserForm = await page.locator('#user-form').isVisible();
    await admin(browser, desktop);
    emit('operator-security', { userForm: operatorSeesUserForm });

    const phone = await login(browser, spec.operator, { width: 390, height: 844 });
    await shot(phone.page, 'overview-phone');
    await phone.page.click('.tab[data-tab=charts]');
    await phone.page.locator('#chart-list canvas').first().waitFor({ timeout: LONG });
    await shot(phone.page, 'charts-phone');

    const viewer = await login(browser, spec.viewer, desktop);
    const vpage = viewer.page;
    const vbutton = row(vpage).locator('button.switch');
    const buttonVisible = await vbutton.isVisible();
    const buttonDisabled = await vbutton.isDisabled();
    await vpage.click('.tab[data-tab=chaos]');
    const chaosFormVisible = await vpage.locator('#chaos-form').isVisible();
    // The API refuses the viewer whatever the page shows: the same call the button makes.
    const api = await vpage.evaluate(async ([vc, target]) => {
      const token = sessionStorage.getItem('kgate.token');
      const resp = await fetch(`/v1/vclusters/${vc}/failover`, {
        method: 'POST', headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
        body: JSON.stringify({ to: target, reason: 'viewer tries' }) });
      return { status: resp.status, body: await resp.json() };
    }, [spec.vcluster, spec.secondary]);
    emit('viewer', { who: await vpage.textContent('#whoami'), buttonVisible, buttonDisabled,
                     chaosFormVisible, api });
    await vpage.click('.tab[data-tab=overview]');
    await shot(vpage, 'overview-viewer');
    emit('done', { shots });
  } finally {
    await browser.close();
  }
}

main().catch(e => {
  emit('error', { error: String(e && e.stack || e), shots });
  process.exit(1);
});
