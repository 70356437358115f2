/* kg_admin_ui — see kg_admin_ui.h. */
#include "admin/kg_admin_ui.h"

#include <string.h>

#include "admin/kg_ui_assets.h"

/* 'self' only: no inline script or style, no eval, no other origin; connect-src 'self' is what
 * lets the page call the API. frame-ancestors and X-Frame-Options: no clickjacking. */
#define UI_CSP                                                                                     \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static void security_headers(kg_admin_request *req)
{
    kg_admin_add_header(req, "Content-Security-Policy", UI_CSP);
    kg_admin_add_header(req, "X-Frame-Options", "DENY");
    kg_admin_add_header(req, "X-Content-Type-Options", "nosniff");
    kg_admin_add_header(req, "Referrer-Policy", "no-referrer");
}

static const kg_ui_asset *find_asset(const char *name)
{
    for (int i = 0; i < kg_ui_assets_n; i++)
        if (strcmp(kg_ui_assets[i].name, name) == 0) return &kg_ui_assets[i];
    return NULL;
}

/* Serves ASSET, or 304 when the browser's copy (If-None-Match) is this one. Browsers revalidate
 * every time (no-cache): a new kgate's console is never mixed with an old one's script. */
static int serve(kg_admin_request *req, const kg_ui_asset *asset)
{
    security_headers(req);
    if (!asset) return kg_admin_error(req, 404, "no such console file: %s", req->path);
    kg_admin_add_header(req, "ETag", asset->etag);
    kg_admin_add_header(req, "Cache-Control", "no-cache");
    const char *seen = kg_admin_header(req, "If-None-Match");
    if (seen && strstr(seen, asset->etag)) {
        kg_admin_no_content(req);
        req->reply_type = asset->type;
        return 304;
    }
    req->reply_static = asset->data;
    req->reply_static_len = asset->len;
    req->reply_type = asset->type;
    return 200;
}

static int handle_index(void *ctx, kg_admin_request *req)
{
    return serve(req, find_asset("index.html"));
}

static int handle_file(void *ctx, kg_admin_request *req)
{
    return serve(req, find_asset(req->params[0]));
}

/* /ui without the slash: the page's relative links need the directory form. */
static int handle_redirect(void *ctx, kg_admin_request *req)
{
    security_headers(req);
    kg_admin_add_header(req, "Location", "/ui/");
    return kg_admin_reply(req, 308, json_pack("{s:s}", "location", "/ui/"));
}

static const kg_admin_route ui_routes[KG_ADMIN_UI_N_ROUTES] = {
    {"GET", "/ui", handle_redirect, NULL, KG_ADMIN_PUBLIC, KG_ROLE_UNDECLARED},
    {"GET", "/ui/", handle_index, NULL, KG_ADMIN_PUBLIC, KG_ROLE_UNDECLARED},
    {"GET", "/ui/{}", handle_file, NULL, KG_ADMIN_PUBLIC, KG_ROLE_UNDECLARED},
};

int kg_admin_ui_routes(kg_admin_route out[KG_ADMIN_UI_N_ROUTES])
{
    return kg_admin_bind_routes(out, ui_routes, KG_ADMIN_UI_N_ROUTES, NULL);
}
