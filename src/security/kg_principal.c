#include "security/kg_principal.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/kg_regex.h"

#define MAX_GROUPS 10 /* $0..$9 */

/* Copies the part of *TEXT up to an unescaped '/' into OUT (unescaping "\/"), and moves *TEXT
 * past that '/'. -1 when there is no closing '/' or OUT is too small. */
static int rule_part(const char **text, char *out, size_t outlen)
{
    const char *s = *text;
    size_t n = 0;
    for (; *s && *s != '/'; s++) {
        if (s[0] == '\\' && s[1] == '/')
            s++;
        else if (s[0] == '\\' && s[1])
            out[n++] = *s++; /* keep other escapes for regcomp */
        if (n + 1 >= outlen) return -1;
        out[n++] = *s;
    }
    if (*s != '/' || n + 1 > outlen) return -1;
    out[n] = '\0';
    *text = s + 1;
    return 0;
}

/* Splits RULE; on success fills PATTERN, the replacement and fold of R. */
static int rule_parse(const char *rule, kg_principal_rule *r, char *pattern, size_t plen, char *why,
                      size_t whylen)
{
    memset(r, 0, sizeof(*r));
    if (strcmp(rule, "DEFAULT") == 0) {
        r->is_default = 1;
        return 0;
    }
    const char *s = rule;
    if (strncmp(s, "RULE:", 5) != 0) {
        snprintf(why, whylen, "a rule is RULE:pattern/replacement/[LU] or DEFAULT");
        return -1;
    }
    s += 5;
    if (rule_part(&s, pattern, plen) < 0 ||
        rule_part(&s, r->replacement, sizeof(r->replacement)) < 0) {
        snprintf(why, whylen, "expected RULE:pattern/replacement/ with an optional L or U");
        return -1;
    }
    if ((s[0] == 'L' || s[0] == 'U') && s[1] == '\0')
        r->fold = s[0];
    else if (s[0] != '\0') {
        snprintf(why, whylen, "only L or U may follow the last '/'");
        return -1;
    }
    for (const char *d = r->replacement; (d = strchr(d, '$')); d++)
        if (d[1] < '0' || d[1] > '9') {
            snprintf(why, whylen, "'$' in the replacement must be followed by a group number");
            return -1;
        }
    if (kg_regex_check(pattern, why, whylen) != 0) return -1;
    return 0;
}

static int rule_compile(const char *rule, kg_principal_rule *r, char *why, size_t whylen)
{
    char pattern[KG_MAPPING_RULE_MAX];
    if (rule_parse(rule, r, pattern, sizeof(pattern), why, whylen) < 0) return -1;
    if (r->is_default) return 0;
    /* Kafka's rules match the subject as a whole. */
    char anchored[KG_MAPPING_RULE_MAX + 8];
    snprintf(anchored, sizeof(anchored), "^(%s)$", pattern);
    int rc = regcomp(&r->re, anchored, REG_EXTENDED);
    if (rc != 0) {
        char msg[128];
        regerror(rc, &r->re, msg, sizeof(msg));
        snprintf(why, whylen, "not a valid regular expression: %s", msg);
        return -1;
    }
    return 0;
}

int kg_principal_rule_check(const char *rule, char *why, size_t whylen)
{
    kg_principal_rule r;
    if (rule_compile(rule, &r, why, whylen) < 0) return -1;
    if (!r.is_default) regfree(&r.re);
    return 0;
}

int kg_principal_map_init(kg_principal_map *m, const kg_listener_tls_cfg *tls, char *why,
                          size_t whylen)
{
    m->n = 0;
    for (int i = 0; i < tls->n_mapping_rules; i++) {
        if (rule_compile(tls->mapping_rules[i], &m->rules[i], why, whylen) < 0) {
            kg_principal_map_free(m);
            return -1;
        }
        m->n++;
    }
    return 0;
}

void kg_principal_map_free(kg_principal_map *m)
{
    for (int i = 0; i < m->n; i++)
        if (!m->rules[i].is_default) regfree(&m->rules[i].re);
    m->n = 0;
}

/* Writes R's replacement for SUBJECT, whose groups are in G (group 1 is the anchoring one, so
 * the rule's $k is match k + 1). */
static int rule_replace(const kg_principal_rule *r, const char *subject, const regmatch_t *g,
                        char *out, size_t outlen)
{
    size_t n = 0;
    for (const char *s = r->replacement; *s; s++) {
        const char *from = s;
        size_t len = 1;
        if (*s == '$') {
            int k = s[1] - '0' + 1;
            s++;
            if (k > MAX_GROUPS || g[k].rm_so < 0) continue; /* an unmatched group: nothing */
            from = subject + g[k].rm_so;
            len = (size_t)(g[k].rm_eo - g[k].rm_so);
        }
        if (n + len >= outlen) return -1;
        memcpy(out + n, from, len);
        n += len;
    }
    out[n] = '\0';
    for (char *c = out; r->fold && *c; c++)
        *c = (char)(r->fold == 'L' ? tolower((unsigned char)*c) : toupper((unsigned char)*c));
    return n > 0 ? 0 : -1;
}

int kg_principal_map_apply(const kg_principal_map *m, const char *subject, char *out, size_t outlen)
{
    if (m->n == 0) return snprintf(out, outlen, "%s", subject) < (int)outlen ? 0 : -1;
    for (int i = 0; i < m->n; i++) {
        const kg_principal_rule *r = &m->rules[i];
        if (r->is_default) return snprintf(out, outlen, "%s", subject) < (int)outlen ? 0 : -1;
        regmatch_t g[MAX_GROUPS + 1];
        if (regexec(&r->re, subject, MAX_GROUPS + 1, g, 0) == 0)
            return rule_replace(r, subject, g, out, outlen);
    }
    return -1;
}
