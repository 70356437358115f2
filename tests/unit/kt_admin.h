/* kt_admin — what the unit tests of the admin API and its CLIs share: a state store in a
 * temporary directory, calls to a running kg_admin, and a CLI command run in-process with its
 * output captured. */
#ifndef KT_ADMIN_H
#define KT_ADMIN_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "admin/kg_cli.h"
#include "kt.h"
#include "state/kg_store.h"

/* A fresh SQLite state in a new directory /tmp/kg_test_TAG.XXXXXX (its name into DIR). */
static KT_UNUSED kg_store *kt_temp_store(char dir[64], const char *tag)
{
    snprintf(dir, 64, "/tmp/kg_test_%s.XXXXXX", tag);
    if (!mkdtemp(dir)) abort();
    char path[128], err[256];
    snprintf(path, sizeof(path), "%s/state.db", dir);
    kg_store *s = kg_store_open(path, err, sizeof(err));
    if (!s) {
        fprintf(stderr, "store: %s\n", err);
        abort();
    }
    return s;
}

static KT_UNUSED void kt_remove_store(kg_store *s, const char *dir)
{
    kg_store_close(s);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
}

/* METHOD PATH with the JSON text BODY (or NULL) to the admin API at BASE as TOKEN: the HTTP
 * status (-1 when the call failed) and the decoded answer in *REPLY (when REPLY is not NULL). */
static KT_UNUSED long kt_call(const char *base, const char *token, const char *method,
                              const char *path, const char *body, json_t **reply)
{
    json_t *j = body ? json_loads(body, 0, NULL) : NULL;
    json_t *doc = NULL;
    long status = 0;
    char err[256];
    if (kg_cli_request(base, token, method, path, j, &status, &doc, err, sizeof(err)) != 0) {
        fprintf(stderr, "request: %s\n", err);
        status = -1;
    }
    json_decref(j);
    if (reply)
        *reply = doc;
    else
        json_decref(doc);
    return status;
}

/* The "error" text of an API answer, "" when it has none. */
static KT_UNUSED const char *kt_error_of(json_t *reply)
{
    const char *e = json_string_value(json_object_get(reply, "error"));
    return e ? e : "";
}

/* A CLI entry point: kg_chaos_cli_run, kg_acl_cli_run, kg_token_cli_run... */
typedef int (*kt_cli_fn)(int argc, char **argv, const char *admin_url, const char *token, FILE *out,
                         FILE *err);

typedef struct kt_cli {
    int rc;
    char *out, *err; /* what it printed (free with kt_cli_done) */
} kt_cli;

/* Runs FN with ARGS split on spaces ('+' stands for a space inside one argument). */
static KT_UNUSED kt_cli kt_cli_run(kt_cli_fn fn, const char *base, const char *token,
                                   const char *args)
{
    char *copy = strdup(args);
    char *argv[48];
    int argc = 0;
    for (char *tok = strtok(copy, " "); tok && argc < 48; tok = strtok(NULL, " "))
        argv[argc++] = tok;
    for (int i = 0; i < argc; i++)
        for (char *p = argv[i]; *p; p++)
            if (*p == '+') *p = ' ';
    kt_cli r = {0};
    size_t n1, n2;
    FILE *out = open_memstream(&r.out, &n1);
    FILE *err = open_memstream(&r.err, &n2);
    r.rc = fn(argc, argv, base, token, out, err);
    fclose(out);
    fclose(err);
    free(copy);
    return r;
}

static KT_UNUSED void kt_cli_done(kt_cli *r)
{
    free(r->out);
    free(r->err);
}

#endif
