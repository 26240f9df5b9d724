/* The rules folder (`sprig run --rules DIR`): see rules.h. Each DIR/NAME.lua is rule node
 * NAME under the root; the folder is scanned at start and, watched, 100 ms after the last
 * change of a burst (editors write a file in several steps). Files ending in .test.lua
 * are offline test steps, not rules, and are skipped. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sprig/alloc.h"
#include "sprig/err.h"
#include "sprig/log.h"
#include "sprig/rules.h"
#include "sprig/util.h"

struct sprig_rules_dir {
    sprig_core_t *core;
    char *dir;
    uv_fs_event_t *watch; /* freed in its close callback */
    uv_timer_t *debounce;
};

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), k = strlen(tail);
    return n >= k && strcmp(s + n - k, tail) == 0;
}

static bool is_rule_file(const char *name)
{
    return name[0] != '.' && ends_with(name, ".lua") && !ends_with(name, ".test.lua");
}

/* Reads a rule file; NULL with the reason logged. */
static char *read_rule(const char *path, const char *file)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        sprig_log_error("rules: %s cannot be read: %s", file, strerror(errno));
        return NULL;
    }
    size_t cap = SPRIG_TEXT_MAX_DEFAULT + 1;
    char *buf = sprig_malloc(cap + 1);
    size_t n = buf != NULL ? fread(buf, 1, cap, f) : 0;
    fclose(f);
    if (buf == NULL) {
        sprig_log_error("rules: %s: out of memory", file);
        return NULL;
    }
    if (n == cap) {
        sprig_log_error("rules: %s is over %d bytes, the longest a point's text may be", file,
                        SPRIG_TEXT_MAX_DEFAULT);
        sprig_free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (strlen(buf) != n || !sprig_utf8_valid(buf, n)) {
        sprig_log_error("rules: %s is not UTF-8 text", file);
        sprig_free(buf);
        return NULL;
    }
    return buf;
}

static const sprig_point_t *text_point(sprig_core_t *c, sprig_node_t *n, const char *type)
{
    const sprig_point_t *p = sprig_tree_point(sprig_core_tree(c), n, type, "0");
    return p != NULL && !p->tombstone ? p : NULL;
}

/* Brings rule node `id` in line with the file. */
static void import_one(sprig_rules_dir_t *d, const char *file, const char *id, const char *src)
{
    sprig_core_t *c = d->core;
    sprig_tree_t *t = sprig_core_tree(c);
    sprig_node_t *n = sprig_tree_node(t, id);
    sprig_error_t err;
    sprig_point_t pts[] = {{.type = "script", .text = src}, {.type = "file", .text = file}};
    if (n == NULL) {
        if (sprig_core_create(c, id, "rule", sprig_core_root_id(c), pts, 2, NULL, NULL, &err) !=
            0) {
            sprig_log_error("rules: %s: %s", file, err.msg);
        }
        else {
            sprig_log_info("rules: %s imported as rule %s", file, id);
        }
        return;
    }
    if (strcmp(sprig_node_type(n), "rule") != 0) {
        sprig_log_error("rules: %s: node %s exists with type %s, not rule; rename the file", file,
                        id, sprig_node_type(n));
        return;
    }
    if (!sprig_node_live(t, n)) {
        sprig_point_t live = {.type = "tombstone", .value = 0};
        if (sprig_core_write_edge(c, sprig_core_root_id(c), id, &live, 1, NULL, &err) != 0) {
            sprig_log_error("rules: %s: %s", file, err.msg);
            return;
        }
    }
    const sprig_point_t *sp = text_point(c, n, "script"), *fp = text_point(c, n, "file");
    size_t k = 0;
    sprig_point_t w[2];
    if (sp == NULL || strcmp(sp->text, src) != 0) {
        w[k++] = pts[0];
    }
    if (fp == NULL || strcmp(fp->text, file) != 0) {
        w[k++] = pts[1];
    }
    if (k > 0) {
        if (sprig_core_write(c, id, w, k, NULL, &err) != 0) {
            sprig_log_error("rules: %s: %s", file, err.msg);
        }
        else {
            sprig_log_info("rules: %s changed: rule %s reloads", file, id);
        }
    }
}

/* Deletes a live rule node imported from a file that is no longer there. */
static int delete_gone(sprig_node_t *n, void *arg)
{
    sprig_rules_dir_t *d = arg;
    sprig_core_t *c = d->core;
    if (strcmp(sprig_node_type(n), "rule") != 0 || !sprig_node_live(sprig_core_tree(c), n)) {
        return 0;
    }
    const sprig_point_t *fp = text_point(c, n, "file");
    if (fp == NULL || fp->text[0] == '\0' || strchr(fp->text, '/') != NULL) {
        return 0;
    }
    char path[4096];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", d->dir, fp->text);
    if (stat(path, &st) == 0) {
        return 0;
    }
    sprig_edge_t *e = sprig_node_live_parent(n);
    sprig_error_t err;
    if (e == NULL) {
        return 0;
    }
    if (sprig_core_delete(c, sprig_node_id(n), sprig_node_id(sprig_edge_up(e)), NULL, &err) != 0) {
        sprig_log_error("rules: %s: %s", fp->text, err.msg);
    }
    else {
        sprig_log_info("rules: %s is gone: rule %s deleted", fp->text, sprig_node_id(n));
    }
    return 0;
}

static int scan(sprig_rules_dir_t *d, sprig_error_t *err)
{
    DIR *dir = opendir(d->dir);
    if (dir == NULL) {
        return sprig_error_set(err, -errno, "--rules %s cannot be read: %s", d->dir,
                               strerror(errno));
    }
    struct dirent *de;
    while ((de = readdir(dir)) != NULL) {
        if (!is_rule_file(de->d_name)) {
            continue;
        }
        char id[256], path[4096];
        size_t len = strlen(de->d_name) - 4;
        snprintf(id, sizeof(id), "%.*s", (int)(len < 255 ? len : 255), de->d_name);
        if (!sprig_id_valid(id)) {
            sprig_log_error("rules: %s: the file name without .lua must be a node id, 1-64 "
                            "bytes of [A-Za-z0-9._:-]; the file is skipped",
                            de->d_name);
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", d->dir, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        char *src = read_rule(path, de->d_name);
        if (src != NULL) {
            import_one(d, de->d_name, id, src);
            sprig_free(src);
        }
    }
    closedir(dir);
    sprig_tree_each_node(sprig_core_tree(d->core), delete_gone, d);
    return 0;
}

static void on_debounce(uv_timer_t *t)
{
    sprig_rules_dir_t *d = t->data;
    sprig_error_t err;
    if (scan(d, &err) != 0) {
        sprig_log_error("rules: %s", err.msg);
    }
}

static void on_change(uv_fs_event_t *h, const char *name, int events, int status)
{
    (void)events;
    sprig_rules_dir_t *d = h->data;
    if (status == 0 && (name == NULL || ends_with(name, ".lua"))) {
        uv_timer_start(d->debounce, on_debounce, 100, 0);
    }
}

int sprig_rules_dir_open(sprig_core_t *core, const char *dir, bool watch, sprig_rules_dir_t **out,
                         sprig_error_t *err)
{
    sprig_rules_dir_t *d = sprig_calloc(1, sizeof(*d));
    *out = NULL;
    if (d == NULL || (d->dir = sprig_strdup(dir)) == NULL) {
        sprig_free(d);
        return sprig_error_set(err, -ENOMEM, "--rules %s: out of memory", dir);
    }
    d->core = core;
    int rc = scan(d, err);
    if (rc != 0) {
        sprig_free(d->dir);
        sprig_free(d);
        return rc;
    }
    if (watch) {
        d->watch = sprig_malloc(sizeof(*d->watch));
        d->debounce = sprig_malloc(sizeof(*d->debounce));
        if (d->watch == NULL || d->debounce == NULL) {
            sprig_free(d->watch);
            sprig_free(d->debounce);
            d->watch = NULL;
            d->debounce = NULL;
        }
        else {
            uv_loop_t *loop = sprig_core_loop(core);
            uv_timer_init(loop, d->debounce);
            d->debounce->data = d;
            uv_fs_event_init(loop, d->watch);
            d->watch->data = d;
            if (uv_fs_event_start(d->watch, on_change, d->dir, 0) != 0) {
                sprig_log_warn("rules: %s cannot be watched; edits apply at the next start",
                               d->dir);
            }
        }
    }
    *out = d;
    return 0;
}

void sprig_rules_dir_close(sprig_rules_dir_t *d)
{
    if (d == NULL) {
        return;
    }
    if (d->watch != NULL) {
        uv_close((uv_handle_t *)d->watch, sprig_free_handle);
        uv_close((uv_handle_t *)d->debounce, sprig_free_handle);
    }
    sprig_free(d->dir);
    sprig_free(d);
}
