/*
 * k8s_store.c - the objects of every loaded file, and the rules that keep the
 * last good state:
 *
 *   - a file that does not parse keeps the objects it had;
 *   - an invalid object keeps its previous version from the same file;
 *   - an object defined twice in one file: the first one counts;
 *   - an object defined in two files: the file whose path sorts first wins.
 *
 * After every change the objects in effect are re-derived per kind, sorted by
 * namespace and name, and the duplicates between files become diagnostics.
 * Reading files and directories is in k8s_files.c.
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "k8s/k8s_internal.h"

bool
k8s_same_ident(const struct k8s_obj *a, enum k8s_kind kind, const char *ns, const char *name)
{
    return a->kind == kind && strcmp(a->meta.ns, ns) == 0 && strcmp(a->meta.name, name) == 0;
}

static void
file_free(struct k8s_file *f)
{
    for (size_t i = 0; i < f->n_objs; i++)
        k8s_obj_free(f->objs[i]);
    free(f->objs);
    k8s_diags_clear(&f->diags);
    free(f->path);
    free(f);
}

static const char *
file_path(const void *e)
{
    return (*(const struct k8s_file *const *)e)->path;
}

/* Returns the index where |path| is or would be inserted; *found tells which. */
static size_t
file_index(const struct k8s_store *st, const char *path, bool *found)
{
    return bsearch_str(st->files, st->n_files, sizeof(*st->files), path, file_path, found);
}

static struct k8s_file *
file_get(struct k8s_store *st, const char *path, bool create)
{
    bool found;
    size_t i = file_index(st, path, &found);

    if (found)
        return st->files[i];
    if (!create)
        return NULL;
    struct k8s_file *f = xcalloc(1, sizeof(*f));
    f->path = xstrdup(path);
    st->files = xrealloc(st->files, (st->n_files + 1) * sizeof(*st->files));
    memmove(&st->files[i + 1], &st->files[i], (st->n_files - i) * sizeof(*st->files));
    st->files[i] = f;
    st->n_files++;
    return f;
}

static void
free_retired(struct k8s_store *st)
{
    for (size_t i = 0; i < st->n_retired; i++)
        k8s_obj_free(st->retired[i]);
    free(st->retired);
    st->retired = NULL;
    st->n_retired = 0;
}

struct k8s_store *
k8s_store_new(void)
{
    static _Atomic uint64_t last_id;
    struct k8s_store *st = xcalloc(1, sizeof(struct k8s_store));

    st->id = ++last_id;
    return st;
}

void
k8s_store_free(struct k8s_store *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->n_files; i++)
        file_free(st->files[i]);
    free(st->files);
    for (size_t i = 0; i < st->n_gone; i++)
        file_free(st->gone[i]);
    free(st->gone);
    free_retired(st);
    for (int k = 0; k < K8S_KIND_COUNT; k++) {
        free(st->eff[k]);
        free(st->all[k]);
    }
    k8s_diags_clear(&st->dups);
    free(st);
}

/* ---- Objects in effect ---- */

struct k8s_ref {
    struct k8s_obj *o;
    struct k8s_file *file;
    size_t pos;  /* index in the file */
    uint64_t id; /* hash of (ns, name): equal for duplicates, so only equal ones are compared */
};

/* (ns, name), then the file whose path sorts first, then the first in the file. */
static int
cmp_ref(const void *a, const void *b)
{
    const struct k8s_ref *x = a, *y = b;
    int c = strcmp(x->o->meta.ns, y->o->meta.ns);

    if (c == 0)
        c = strcmp(x->o->meta.name, y->o->meta.name);
    if (c == 0 && x->file != y->file)
        c = strcmp(x->file->path, y->file->path);
    if (c == 0)
        c = x->pos < y->pos ? -1 : x->pos > y->pos;
    return c;
}

/* First index in [lo, hi) of |v| whose ref sorts after |r|. */
static size_t
upper_bound(const struct k8s_ref *v, size_t lo, size_t hi, const struct k8s_ref *r)
{
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cmp_ref(&v[mid], r) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/*
 * Re-derives the sorted list of every object of |kind| from the files that
 * changed: the refs of the others stay in order (their objects and positions
 * are what they were), those of dirty files are sorted and merged in, those
 * of dirty and gone files' previous objects dropped without looking at the
 * objects, which are freed already.
 */
static void
rederive_all(struct k8s_store *st, enum k8s_kind kind)
{
    struct k8s_ref *old = st->all[kind], *add = NULL;
    size_t m = 0, n_add = 0;

    for (size_t i = 0; i < st->n_all[kind]; i++)
        if (!old[i].file->dirty && !old[i].file->gone)
            old[m++] = old[i];
    for (size_t i = 0; i < st->n_files; i++) {
        struct k8s_file *f = st->files[i];
        if (!f->dirty)
            continue;
        for (size_t j = 0; j < f->n_objs; j++) {
            if (f->objs[j]->kind != kind)
                continue;
            if (n_add % 64 == 0)
                add = xrealloc(add, (n_add + 64) * sizeof(*add));
            const struct k8s_obj *o = f->objs[j];
            uint64_t id = k8s_hash(K8S_HASH_INIT, o->meta.ns, strlen(o->meta.ns) + 1);
            id = k8s_hash(id, o->meta.name, strlen(o->meta.name) + 1);
            add[n_add++] = (struct k8s_ref){f->objs[j], f, j, id};
        }
    }
    if (n_add > 1)
        qsort(add, n_add, sizeof(*add), cmp_ref);
    struct k8s_ref *all = xcalloc(m + n_add + 1, sizeof(*all));
    size_t i = 0, k = 0;
    for (size_t a = 0; a < n_add; a++) {
        size_t j = upper_bound(old, i, m, &add[a]);
        while (i < j)
            all[k++] = old[i++];
        all[k++] = add[a];
    }
    while (i < m)
        all[k++] = old[i++];
    free(old);
    free(add);
    st->all[kind] = all;
    st->n_all[kind] = m + n_add;
}

static void
rebuild(struct k8s_store *st)
{
    k8s_diags_clear(&st->dups);
    for (int k = 0; k < K8S_KIND_COUNT; k++) {
        rederive_all(st, (enum k8s_kind)k);
        const struct k8s_ref *refs = st->all[k];
        size_t n = st->n_all[k];
        free(st->eff[k]);
        st->eff[k] = xcalloc(n + 1, sizeof(*st->eff[k]));
        st->n_eff[k] = 0;
        const struct k8s_ref *first = NULL; /* of the last identity: the one in effect */
        for (size_t i = 0; i < n; i++) {
            struct k8s_obj *o = refs[i].o;
            struct k8s_obj *prev = first ? first->o : NULL;
            if (prev != NULL && first->id == refs[i].id &&
                k8s_same_ident(prev, o->kind, o->meta.ns, o->meta.name)) {
                k8s_diag_add(&st->dups, o->file, o->line, K8S_ERROR, NULL,
                             "%s %s%s%s is already defined at %s:%d; this one is ignored",
                             k8s_kind_name(o->kind), o->meta.ns, o->meta.ns[0] ? "/" : "",
                             o->meta.name, prev->file, prev->line);
                continue;
            }
            st->eff[k][st->n_eff[k]++] = o;
            first = &refs[i];
        }
    }
    for (size_t i = 0; i < st->n_files; i++)
        st->files[i]->dirty = false;
    for (size_t i = 0; i < st->n_gone; i++)
        file_free(st->gone[i]);
    free(st->gone);
    st->gone = NULL;
    st->n_gone = 0;
    free_retired(st);
    st->stale = false;
    st->eff_version++;
    if (st->changed)
        st->generation++;
    st->changed = false;
}

/* ---- Loading ---- */

/* An order-independent digest of what a file defines: any change alters it. */
static uint64_t
objs_digest(struct k8s_obj *const *objs, size_t n)
{
    uint64_t sum = n;

    for (size_t i = 0; i < n; i++) {
        const struct k8s_obj *o = objs[i];
        uint64_t h = k8s_hash(K8S_HASH_INIT, &o->kind, sizeof(o->kind));
        h = k8s_hash(h, o->meta.ns, strlen(o->meta.ns) + 1);
        h = k8s_hash(h, o->meta.name, strlen(o->meta.name) + 1);
        h = k8s_hash(h, &o->hash, sizeof(o->hash));
        sum += h * 0x9e3779b97f4a7c15ULL;
    }
    return sum;
}

/*
 * An index of objects by (kind, namespace, name) over an array the caller
 * owns, so that loading a file of n objects costs O(n), not O(n^2).
 */
struct ident_index {
    size_t *slot; /* 1 + position in the array; 0 = free */
    size_t cap;   /* power of two, at least twice the entries */
};

static uint64_t
ident_hash(enum k8s_kind kind, const char *ns, const char *name)
{
    uint64_t h = k8s_hash(K8S_HASH_INIT, &kind, sizeof(kind));
    h = k8s_hash(h, ns, strlen(ns) + 1);
    return k8s_hash(h, name, strlen(name) + 1);
}

static void
index_init(struct ident_index *x, size_t n)
{
    x->cap = 16;
    while (x->cap < n * 2 + 2)
        x->cap *= 2;
    x->slot = xcalloc(x->cap, sizeof(*x->slot));
}

/* Returns the position of the object, or SIZE_MAX. */
static size_t
index_find(const struct ident_index *x, struct k8s_obj *const *objs, enum k8s_kind kind,
           const char *ns, const char *name)
{
    for (size_t j = ident_hash(kind, ns, name) & (x->cap - 1); x->slot[j] != 0;
         j = (j + 1) & (x->cap - 1)) {
        const struct k8s_obj *o = objs[x->slot[j] - 1];
        if (o != NULL && k8s_same_ident(o, kind, ns, name))
            return x->slot[j] - 1;
    }
    return SIZE_MAX;
}

static void
index_add(struct ident_index *x, const struct k8s_obj *o, size_t pos)
{
    size_t j = ident_hash(o->kind, o->meta.ns, o->meta.name) & (x->cap - 1);

    while (x->slot[j] != 0)
        j = (j + 1) & (x->cap - 1);
    x->slot[j] = pos + 1;
}

struct load {
    struct k8s_dctx c;
    struct k8s_file *f;
    struct ident_index old; /* over f->objs */
    struct k8s_obj **objs;  /* the new list */
    size_t n_objs;
    struct ident_index now; /* over objs; sized for the cap */
    size_t n_seen;          /* documents and List items, against the cap */
};

static void
push(struct load *l, struct k8s_obj *o)
{
    if (l->n_objs % 32 == 0)
        l->objs = xrealloc(l->objs, (l->n_objs + 32) * sizeof(*l->objs));
    index_add(&l->now, o, l->n_objs);
    l->objs[l->n_objs++] = o;
}

/* An invalid object: keep the version this file had, unless the file already has a newer one. */
static void
keep_previous(struct load *l, const struct k8s_ident *id, int line)
{
    struct k8s_file *f = l->f;
    size_t i;

    if (!id->known || index_find(&l->now, l->objs, id->kind, id->ns, id->name) != SIZE_MAX ||
        (i = index_find(&l->old, f->objs, id->kind, id->ns, id->name)) == SIZE_MAX)
        return;
    struct k8s_obj *old = f->objs[i];
    k8s_warn(&l->c, line, "%s %s%s%s: keeping the version loaded before (line %d)",
             k8s_kind_name(id->kind), id->ns, id->ns[0] ? "/" : "", id->name, old->line);
    f->objs[i] = NULL; /* moved to the new list */
    push(l, old);
}

static void
load_one(struct load *l, json_t *json, int line, struct k8s_lines *lines)
{
    struct k8s_obj *o;
    struct k8s_ident id;

    if (++l->n_seen > K8S_MAX_OBJECTS) {
        if (l->n_seen == K8S_MAX_OBJECTS + 1)
            k8s_fail(&l->c, line, "more than %d objects in the file; the rest is ignored",
                     K8S_MAX_OBJECTS);
        return;
    }
    int rc = k8s_decode(&l->c, json, line, lines, &o, &id);
    if (rc == K8S_DECODED) {
        size_t i = index_find(&l->now, l->objs, o->kind, o->meta.ns, o->meta.name);
        if (i != SIZE_MAX) {
            const struct k8s_obj *first = l->objs[i];
            k8s_fail(&l->c, line, "%s %s%s%s is already defined at line %d; this one is ignored",
                     k8s_kind_name(o->kind), o->meta.ns, o->meta.ns[0] ? "/" : "", o->meta.name,
                     first->line);
            k8s_obj_free(o);
        } else {
            push(l, o);
        }
    } else if (rc < 0) {
        keep_previous(l, &id, line);
    }
    free(id.ns);
    free(id.name);
}

/* kind: List (or any *List) with items: each item is an object of its own, as kubectl does. */
static bool
is_list(const json_t *json)
{
    const char *kind = json_string_value(json_object_get(json, "kind"));
    size_t n = kind ? strlen(kind) : 0;

    return n >= 4 && strcmp(kind + n - 4, "List") == 0 &&
           json_is_array(json_object_get(json, "items"));
}

static void
load_docs(struct load *l, const struct k8s_docs *docs)
{
    for (size_t i = 0; i < docs->n; i++) {
        const struct k8s_doc *doc = &docs->v[i];
        l->c.lines = doc->lines;
        if (!is_list(doc->json)) {
            load_one(l, doc->json, doc->line, doc->lines);
            continue;
        }
        json_t *items = json_object_get(doc->json, "items");
        for (size_t j = 0; j < json_array_size(items); j++) {
            json_t *item = json_array_get(items, j);
            l->c.line = doc->line;
            load_one(l, item, k8s_val_line(&l->c, item), doc->lines);
        }
    }
}

void
k8s_store_dups(const struct k8s_store *st, const char *path, struct k8s_diags *out)
{
    for (size_t i = 0; i < st->dups.n; i++)
        if (path == NULL || strcmp(st->dups.v[i].file, path) == 0)
            k8s_diag_add(out, st->dups.v[i].file, st->dups.v[i].line, st->dups.v[i].severity,
                         st->dups.v[i].code, "%s", st->dups.v[i].msg);
}

void
k8s_store_commit(struct k8s_store *st)
{
    if (st->stale)
        rebuild(st);
}

/*
 * Gives the newly decoded objects of |l| their gen: that of the object this
 * file defined before under the same identity when the content is equal
 * (so what was built from it is reused), else a new one.
 */
static void
assign_gens(struct k8s_store *st, struct load *l)
{
    for (size_t i = 0; i < l->n_objs; i++) {
        struct k8s_obj *o = l->objs[i];
        if (o->gen != 0)
            continue; /* an old version kept */
        size_t j = index_find(&l->old, l->f->objs, o->kind, o->meta.ns, o->meta.name);
        struct k8s_obj *old = j != SIZE_MAX ? l->f->objs[j] : NULL;
        if (old != NULL && old->hash == o->hash && json_equal(old->json, o->json)) {
            o->gen = old->gen;
        } else {
            o->gen = ++st->last_gen;
        }
    }
}

/*
 * Replaces the objects of |f| with those of |docs| (consumed), following the
 * last-good-state rules; the file's diagnostics must have been cleared.
 */
static void
apply_docs(struct k8s_store *st, struct k8s_file *f, struct k8s_docs *docs)
{
    struct load l = {.c = {.file = f->path, .d = &f->diags}, .f = f};
    uint64_t before = objs_digest(f->objs, f->n_objs);
    size_t n_before = f->n_objs;

    index_init(&l.old, f->n_objs);
    for (size_t i = 0; i < f->n_objs; i++)
        index_add(&l.old, f->objs[i], i);
    size_t items = 0;
    for (size_t i = 0; i < docs->n; i++)
        items += is_list(docs->v[i].json)
                     ? json_array_size(json_object_get(docs->v[i].json, "items"))
                     : 1;
    index_init(&l.now, items < K8S_MAX_OBJECTS ? items : K8S_MAX_OBJECTS);
    load_docs(&l, docs);
    k8s_docs_free(docs);
    assign_gens(st, &l);
    free(l.old.slot);
    free(l.now.slot);
    /* Those not moved to the new list: the objects in effect may still point at them. */
    for (size_t i = 0; i < f->n_objs; i++)
        if (f->objs[i] != NULL) {
            if (st->n_retired % 64 == 0)
                st->retired = xrealloc(st->retired, (st->n_retired + 64) * sizeof(*st->retired));
            st->retired[st->n_retired++] = f->objs[i];
        }
    free(f->objs);
    f->objs = l.objs;
    f->n_objs = l.n_objs;
    if (before != objs_digest(f->objs, f->n_objs) || n_before != f->n_objs)
        st->changed = true;
    /* Object pointers changed even when the content did not: the view is stale. */
    st->stale = true;
    f->dirty = true;
}

/* The end of every load: its diagnostics, the commit, the duplicates. */
static int
finish_load(struct k8s_store *st, struct k8s_file *f, struct k8s_diags *d, bool commit)
{
    int rc = 0;

    k8s_diags_append(d, &f->diags);
    if (k8s_diags_count(&f->diags, K8S_ERROR) > 0)
        rc = -MESH_ECONFIG;
    if (commit) {
        if (st->stale)
            rebuild(st);
        if (k8s_store_has_dups(st, f->path))
            rc = -MESH_ECONFIG;
        k8s_store_dups(st, f->path, d);
    }
    return rc;
}

int
k8s_store_load(struct k8s_store *st, const char *name, const char *data, size_t len,
               struct k8s_diags *d, bool commit)
{
    uint64_t data_hash = k8s_hash_bytes(data, len);
    struct k8s_file *f = file_get(st, name, true);
    struct k8s_docs docs;

    /* Same bytes as last time: same objects and diagnostics; nothing to parse. */
    if (f->data_len == len && f->data_hash == data_hash)
        return finish_load(st, f, d, commit);
    k8s_diags_clear(&f->diags);
    f->data_hash = data_hash;
    f->data_len = len;
    /* A file that does not parse keeps its objects as they were. */
    if (k8s_yaml_parse(f->path, data, len, &docs, &f->diags) == 0)
        apply_docs(st, f, &docs);
    return finish_load(st, f, d, commit);
}

int
k8s_store_put_json(struct k8s_store *st, const char *name, const json_t *obj,
                   struct k8s_diags *d, bool commit)
{
    struct k8s_file *f = file_get(st, name, true);
    json_t *copy = obj != NULL ? json_deep_copy(obj) : NULL;

    CHECK(obj == NULL || copy != NULL);
    /* What the server records of who wrote which field: large, and read by nobody here. */
    json_t *meta = json_object_get(copy, "metadata");
    if (json_is_object(meta))
        json_object_del(meta, "managedFields");
    k8s_diags_clear(&f->diags);
    f->data_hash = 0;
    f->data_len = 0;
    if (!json_is_object(copy)) {
        /* As a file that does not parse: nothing to go by, so the source keeps what it had. */
        k8s_diag_add(&f->diags, f->path, 0, K8S_ERROR, NULL,
                     "expected a Kubernetes object (a mapping), got %s",
                     copy != NULL ? k8s_json_type_name(copy) : "nothing");
        json_decref(copy);
        return finish_load(st, f, d, commit);
    }
    struct k8s_docs docs = {.v = xcalloc(1, sizeof(*docs.v)), .n = 1};
    docs.v[0].json = copy;
    apply_docs(st, f, &docs);
    return finish_load(st, f, d, commit);
}

bool
k8s_store_has_dups(const struct k8s_store *st, const char *path)
{
    for (size_t i = 0; i < st->dups.n; i++)
        if (strcmp(st->dups.v[i].file, path) == 0)
            return true;
    return false;
}

int
k8s_store_load_buf(struct k8s_store *st, const char *name, const char *data, size_t len,
                   struct k8s_diags *d)
{
    return k8s_store_load(st, name, data, len, d, true);
}

void
k8s_store_forget(struct k8s_store *st, const char *path, bool commit)
{
    bool found;
    size_t i = file_index(st, path, &found);

    if (found) {
        struct k8s_file *f = st->files[i];
        if (f->n_objs > 0)
            st->changed = true;
        /* Freed once the objects in effect no longer refer to it. */
        f->gone = true;
        st->gone = xrealloc(st->gone, (st->n_gone + 1) * sizeof(*st->gone));
        st->gone[st->n_gone++] = f;
        memmove(&st->files[i], &st->files[i + 1], (st->n_files - i - 1) * sizeof(*st->files));
        st->n_files--;
        st->stale = true;
    }
    if (commit && st->stale)
        rebuild(st);
}

void
k8s_store_remove_file(struct k8s_store *st, const char *path)
{
    k8s_store_forget(st, path, true);
}

const char *
k8s_store_file_path(const struct k8s_store *st, size_t i)
{
    return i < st->n_files ? st->files[i]->path : NULL;
}

void
k8s_store_file_error(struct k8s_store *st, const char *path, const char *msg)
{
    struct k8s_file *f = file_get(st, path, true);

    k8s_diags_clear(&f->diags);
    k8s_diag_add(&f->diags, path, 0, K8S_ERROR, NULL, "%s", msg);
    f->data_len = 0;
    f->data_hash = 0; /* forces a parse on the next successful read */
}

uint64_t
k8s_store_generation(const struct k8s_store *st)
{
    return st->generation;
}

void
k8s_store_diags_unsorted(const struct k8s_store *st, struct k8s_diags *out)
{
    for (size_t i = 0; i < st->n_files; i++)
        k8s_diags_append(out, &st->files[i]->diags);
    k8s_diags_append(out, &st->dups);
}

void
k8s_store_file_diags(const struct k8s_store *st, struct k8s_diags *out)
{
    struct k8s_diags all = {0};

    k8s_store_diags_unsorted(st, &all);
    k8s_diags_sort(&all);
    k8s_diags_append(out, &all);
    k8s_diags_clear(&all);
}
