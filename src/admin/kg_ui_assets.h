/* kg_ui_assets — the web console's files (src/admin/ui/), compiled into the binary by
 * scripts/gen-ui-assets into $(BUILD)/gen/kg_ui_assets.c: never edit that file. */
#ifndef KG_UI_ASSETS_H
#define KG_UI_ASSETS_H

#include <stddef.h>

typedef struct kg_ui_asset {
    const char *name;          /* file name under src/admin/ui/, e.g. "app.js" */
    const char *type;          /* Content-Type */
    const char *etag;          /* strong ETag, quoted: a hash of the contents */
    const unsigned char *data; /* the contents */
    size_t len;
} kg_ui_asset;

extern const kg_ui_asset kg_ui_assets[];
extern const int kg_ui_assets_n;

#endif
