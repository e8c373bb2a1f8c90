/*
 * k8s_internal.h - what the reader's files share (decoded objects, the YAML
 * reader, field decoding helpers, diagnostics, the store's layout), and what
 * the converter (lib/k8sconv, which depends on this module, never the other
 * way round) reads of them:
 *
 *   k8s_yaml.c      YAML bytes -> JSON documents with a line map
 *   k8s_decode.c    apiVersion/kind/metadata, Namespace, ServiceAccount, stored kinds
 *   k8s_pod.c       Pod fields            k8s_service.c  Service fields
 *   k8s_slice.c     EndpointSlice fields
 *   k8s_json.c      typed field getters with file:line errors, name/label rules
 *   k8s_authz.c     AuthorizationPolicy: validation and its own conversion (it decides validity)
 *   k8s_peerauthn.c PeerAuthentication: validation
 *   k8s_store.c     files, last-good-state rules, objects in effect (re-derived from the
 *                   files that changed), object gens
 *   k8s_query.c     lookups over the objects in effect, object accessors
 *   k8s_files.c     reading files and directories
 *   k8s_diag.c      diagnostics, hashing     k8s_arena.c  allocations for one message
 */
#ifndef MESH_LIB_K8S_INTERNAL_H
#define MESH_LIB_K8S_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "k8s/k8s.h"
#include "k8s/k8s_objects.h"

/* ---- Line map (k8s_yaml.c) ---- */

/*
 * Where each JSON value of a document was written. Values are keyed by
 * pointer; object members also by (object, key) because true, false and null
 * are shared singletons in jansson. Refcounted: List items share one map.
 */
struct k8s_lines;
struct k8s_lines *k8s_lines_ref(struct k8s_lines *l);
void k8s_lines_unref(struct k8s_lines *l);
/* Returns 0 when unknown. */
int k8s_lines_get(const struct k8s_lines *l, const void *v, const char *key);

/* struct k8s_doc, k8s_yaml_parse(), k8s_docs_free(): public, in k8s.h. */

/* ---- Objects (struct k8s_obj and its parts: k8s_objects.h) ---- */

void k8s_obj_free(struct k8s_obj *o);

/* ---- Decoding (k8s_decode.c, k8s_pod.c, k8s_service.c, k8s_json.c) ---- */

struct k8s_dctx {
    const char *file;
    struct k8s_diags *d;
    const struct k8s_lines *lines;
    int line; /* the object's line: the fallback */
};

/* What a document said it is, as far as it got. */
struct k8s_ident {
    bool known; /* kind, namespace and name were all valid */
    enum k8s_kind kind;
    char *ns;
    char *name;
};

enum k8s_decode_rc {
    K8S_DECODED = 0,
    K8S_SKIPPED = 1, /* not ours (unknown kind): a warning was added */
};

/*
 * Decodes one object written at |line|. Returns K8S_DECODED with *out set,
 * K8S_SKIPPED, or -MESH_ECONFIG with an error added and |id| telling which
 * object it was meant to be (the caller frees id->ns and id->name).
 */
int k8s_decode(struct k8s_dctx *c, json_t *json, int line, struct k8s_lines *lines,
               struct k8s_obj **out, struct k8s_ident *id);
/* Kind-specific parts; |spec| and |status| may be NULL. */
int k8s_decode_pod(struct k8s_dctx *c, const json_t *json, struct k8s_pod *p);
int k8s_decode_service(struct k8s_dctx *c, const json_t *json, struct k8s_service *s);
/* EndpointSlice (k8s_slice.c). */
int k8s_decode_slice(struct k8s_dctx *c, const json_t *json, const struct k8s_meta *m,
                     struct k8s_slice *s);
void k8s_slice_cleanup(struct k8s_slice *s);
void k8s_pod_cleanup(struct k8s_pod *p);
void k8s_service_cleanup(struct k8s_service *s);
/*
 * AuthorizationPolicy and PeerAuthentication: validated as Istio's webhook
 * does (errors make the object invalid: the store keeps its previous
 * version); an AuthorizationPolicy is also converted (k8s_authz.c).
 */
int k8s_decode_authz(struct k8s_dctx *c, const json_t *json, const struct k8s_meta *m,
                     struct k8s_ap *ap);
int k8s_decode_peerauthn(struct k8s_dctx *c, const json_t *json, const struct k8s_meta *m,
                         struct k8s_pa *pa);
void k8s_ap_cleanup(struct k8s_ap *ap);
void k8s_pa_cleanup(struct k8s_pa *pa);

/* Adds an error at |line| and returns -MESH_ECONFIG. */
int k8s_fail(struct k8s_dctx *c, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void k8s_warn(struct k8s_dctx *c, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int k8s_key_line(const struct k8s_dctx *c, const json_t *parent, const char *key);
int k8s_val_line(const struct k8s_dctx *c, const json_t *v);

/*
 * Field getters for member |key| of |parent|. |path| names |parent| in
 * messages ("spec.ports[2]"; "" for the object itself), which then say
 * "spec.ports[2].port: ...". A missing member or an explicit null leaves *out
 * NULL (false, 0) and returns 0; a wrong type or a value over a cap is an error.
 */
int k8s_get_str(struct k8s_dctx *c, const json_t *parent, const char *key, const char *path,
                const char **out);
int k8s_get_bool(struct k8s_dctx *c, const json_t *parent, const char *key, const char *path,
                 bool *out);
int k8s_get_obj(struct k8s_dctx *c, const json_t *parent, const char *key, const char *path,
                const json_t **out);
int k8s_get_arr(struct k8s_dctx *c, const json_t *parent, const char *key, const char *path,
                size_t max, const json_t **out);
/* An integer 1-65535 (JSON numbers with an integral value count). */
int k8s_get_port(struct k8s_dctx *c, const json_t *parent, const char *key, const char *path,
                 uint16_t *out);
/* Checks |v| is 1-65535; |line| is where it was written, |what| names it in full. */
int k8s_port_value(struct k8s_dctx *c, const json_t *v, int line, const char *what, uint16_t *out);

enum k8s_map_rule {
    K8S_MAP_LABELS = 0,  /* label keys and values */
    K8S_MAP_ANNOTATIONS, /* label-style keys, any values */
};
/* A string-to-string map, sorted by key into *out. */
int k8s_get_strmap(struct k8s_dctx *c, const json_t *parent, const char *key, const char *path,
                   enum k8s_map_rule rule, struct k8s_kv **out, size_t *n_out);
void k8s_kv_free(struct k8s_kv *kv, size_t n);

/* Parses a textual IPv4 or IPv6 address (no zone, no brackets). Returns 0 or -EINVAL. */
int k8s_parse_ip(const char *s, struct k8s_ip *ip);
/* k8s_dns_label(), k8s_dns_subdomain(): public, in k8s.h. */
/* "a mapping", "a list", "a string"... for messages about |v|'s type. */
const char *k8s_json_type_name(const json_t *v);
/* The member |key| of |parent|, or NULL when absent or null. */
const json_t *k8s_json_member(const json_t *parent, const char *key);
/* IANA service name, as a named port (<= 15, [a-z0-9-], a letter, no "--"). */
bool k8s_port_name(const char *s);

/* ---- Store internals (k8s_store.c) for k8s_files.c, k8s_query.c and the converter ---- */

/* Written only by k8s_store.c; the other files read the view (eff) through k8s_query.c. */
struct k8s_file {
    char *path;
    struct k8s_obj **objs; /* in document order */
    size_t n_objs;
    struct k8s_diags diags; /* from the last load */
    uint64_t data_hash;     /* of the bytes last loaded */
    size_t data_len;
    bool dirty; /* objs changed since the objects in effect were derived */
    bool gone;  /* forgotten: freed once they have been re-derived */
};

struct k8s_ref; /* k8s_store.c */

struct k8s_store {
    struct k8s_file **files; /* sorted by path */
    size_t n_files;
    uint64_t generation;
    uint64_t last_gen;                    /* the last k8s_obj.gen given out */
    struct k8s_obj **eff[K8S_KIND_COUNT]; /* in effect, sorted by (ns, name) */
    size_t n_eff[K8S_KIND_COUNT];
    /* Every object, duplicates too, sorted by (ns, name, file path, position): re-derived
     * from the dirty and gone files only. */
    struct k8s_ref *all[K8S_KIND_COUNT];
    size_t n_all[K8S_KIND_COUNT];
    struct k8s_file **gone; /* forgotten since the last derivation */
    size_t n_gone;
    /* Objects replaced since the last derivation: freed by it, as the view may point at them. */
    struct k8s_obj **retired;
    size_t n_retired;
    bool changed; /* objects changed since the last derivation: it bumps |generation| */
    struct k8s_diags dups; /* duplicates between files */
    bool stale;            /* files changed since the view was derived */
    uint64_t eff_version;  /* counts re-derivations of eff */
    uint64_t id; /* unique among the stores of this process: a converter serves one */
};

/* Is |o| the object |kind| |ns|/|name|? */
bool k8s_same_ident(const struct k8s_obj *o, enum k8s_kind kind, const char *ns, const char *name);

/*
 * k8s_store_load_buf() with the re-derivation of the objects in effect
 * deferred unless |commit| (k8s_store_forget() and k8s_store_commit() are
 * public, in k8s.h): a directory sync loads every file, then commits once.
 */
int k8s_store_load(struct k8s_store *st, const char *name, const char *data, size_t len,
                   struct k8s_diags *d, bool commit);
/* Appends the duplicate diagnostics of |path| (NULL: of every file) to |out|. */
void k8s_store_dups(const struct k8s_store *st, const char *path, struct k8s_diags *out);
bool k8s_store_has_dups(const struct k8s_store *st, const char *path);
/* The path of the |i|th file in path order, or NULL past the end. */
const char *k8s_store_file_path(const struct k8s_store *st, size_t i);
/* Records that |path| could not be read: its objects stay, the error stands until a good read. */
void k8s_store_file_error(struct k8s_store *st, const char *path, const char *msg);



#endif