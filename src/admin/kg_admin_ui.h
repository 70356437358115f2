/* kg_admin_ui — the web console (docs/console.md): GET /ui/ serves its page, GET /ui/FILE its
 * script and style sheet, all compiled into the binary (kg_ui_assets). The files hold no data,
 * so they need no token; the page asks for one and sends it, in an Authorization header, with
 * every call to the same /v1 API the CLI uses. Every answer carries a Content-Security-Policy
 * that allows no inline script and no other origin, and may not be framed. */
#ifndef KG_ADMIN_UI_H
#define KG_ADMIN_UI_H

#include "admin/kg_admin.h"

#define KG_ADMIN_UI_N_ROUTES 3

/* Fills OUT with the console's routes; returns how many. */
int kg_admin_ui_routes(kg_admin_route out[KG_ADMIN_UI_N_ROUTES]);

#endif
