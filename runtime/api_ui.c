/* The web UI's side of the API: the page and its scripts (runtime/web/, built into the
 * binary by CMakeLists.txt, so the gateway serves them with no file on disk and no
 * internet), and POST /v1/rules/compile, the rule editor's check before saving.
 *
 * The files are public: fetching them needs no token (the page asks for one, then sends
 * it with every /v1 call). They carry an ETag (a hash of their bytes, made by the build)
 * for revalidation and a Content-Security-Policy that lets the page load only from this
 * server. Unknown paths and methods are answered by api.c, as JSON errors. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "sprig/err.h"
#include "sprig/luabox.h"

#define COMPILE_MEM_MAX (8u * 1024 * 1024)

static const struct {
    const char *ext, *type;
} content_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
};

static const char csp[] = "default-src 'self'; script-src 'self'; style-src 'self'; "
                          "img-src 'self' data:; connect-src 'self'; base-uri 'none'; "
                          "form-action 'none'; frame-ancestors 'none'";

bool api__ui_path(const char *url)
{
    return strcmp(url, "/v1") != 0 && strncmp(url, "/v1/", 4) != 0;
}

static const char *content_type(const char *name)
{
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot != NULL && i < sizeof(content_types) / sizeof(content_types[0]); i++) {
        if (strcmp(dot, content_types[i].ext) == 0) {
            return content_types[i].type;
        }
    }
    return "application/octet-stream";
}

const api_asset_t *api__ui_find(const char *url)
{
    const char *name = strcmp(url, "/") == 0 || strcmp(url, "/index.html") == 0 ? "index.html"
                       : strncmp(url, "/ui/", 4) == 0                          ? url + 4
                                                                               : NULL;
    for (const api_asset_t *a = api__assets; name != NULL && a->name != NULL; a++) {
        if (strcmp(a->name, name) == 0) {
            return a;
        }
    }
    return NULL;
}

enum MHD_Result api__ui_serve(api_req_t *req, const api_asset_t *a)
{
    const char *inm = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "If-None-Match");
    bool same = inm != NULL && strstr(inm, a->etag) != NULL;
    struct MHD_Response *r = MHD_create_response_from_buffer(
        same ? 0 : a->len, same ? (void *)"" : (void *)a->data, MHD_RESPMEM_PERSISTENT);
    if (r == NULL) {
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", content_type(a->name));
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Content-Security-Policy", csp);
    /* Revalidated on every load: a new binary serves new files at once. */
    MHD_add_response_header(r, "Cache-Control", "no-cache");
    MHD_add_response_header(r, "ETag", a->etag);
    enum MHD_Result rc =
        MHD_queue_response(req->conn, same ? MHD_HTTP_NOT_MODIFIED : MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

/* The line of a Lua message "NAME:LINE: text" (0 when it names none). */
static long message_line(const char *msg, const char *name)
{
    size_t n = strlen(name);
    const char *p = strncmp(msg, name, n) == 0 && msg[n] == ':' ? msg + n + 1 : NULL;
    char *end;
    long line = p != NULL ? strtol(p, &end, 10) : 0;
    return p != NULL && end != p && *end == ':' && line > 0 ? line : 0;
}

void api__rules_compile(sprig_api_t *api, api_req_t *req, api_answer_t *ans)
{
    (void)api;
    cJSON *j = api__body_json(req, ans);
    if (j == NULL) {
        return;
    }
    const cJSON *script = cJSON_GetObjectItemCaseSensitive(j, "script");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(j, "name");
    const char *fault = !cJSON_IsObject(j)        ? "the body is not an object"
                        : script == NULL          ? "\"script\" is missing"
                        : !cJSON_IsString(script) ? "\"script\" is not a string"
                        : name != NULL && !cJSON_IsNull(name) && !cJSON_IsString(name)
                            ? "\"name\" is not a string"
                            : NULL;
    if (fault != NULL) {
        const cJSON *bad = !cJSON_IsObject(j) ? j : !cJSON_IsString(script) ? script : name;
        char *shown = bad != NULL ? cJSON_PrintUnformatted(bad) : NULL;
        api__error(ans, 400, "body must be {\"script\": string, \"name\"?: string}: %s%s%.40s%s",
                   fault, shown != NULL ? " (" : "", shown != NULL ? shown : "",
                   shown == NULL ? "" : strlen(shown) > 40 ? "...)" : ")");
        cJSON_free(shown);
        cJSON_Delete(j);
        return;
    }
    const char *chunk = cJSON_IsString(name) && name->valuestring[0] != '\0' ? name->valuestring
                                                                             : "rule";
    if (strlen(chunk) > 200) {
        api__error(ans, 400, "name of %zu bytes is over the limit of 200", strlen(chunk));
        cJSON_Delete(j);
        return;
    }
    sprig_luabox_t *box = NULL;
    sprig_error_t err = {0};
    sprig_luabox_opts_t o = {.mem_max = COMPILE_MEM_MAX};
    int rc = sprig_luabox_open(&o, &box);
    if (rc == 0) {
        rc = sprig_luabox_load(box, chunk, script->valuestring, strlen(script->valuestring), &err);
    }
    sprig_luabox_close(box);
    cJSON *out = cJSON_CreateObject();
    if (rc == -ENOMEM && box == NULL) {
        cJSON_Delete(out);
        cJSON_Delete(j);
        api__error(ans, 503, "out of memory");
        return;
    }
    cJSON_AddBoolToObject(out, "ok", rc == 0);
    if (rc != 0) {
        if (rc == -ENOMEM) {
            snprintf(err.msg, sizeof(err.msg), "%s: the script is too large to compile within %u MiB",
                     chunk, COMPILE_MEM_MAX >> 20);
        }
        cJSON_AddStringToObject(out, "error", err.msg);
        cJSON_AddNumberToObject(out, "line", (double)message_line(err.msg, chunk));
    }
    cJSON_Delete(j);
    ans->status = 200;
    ans->json = out;
}
