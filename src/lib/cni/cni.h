/*
 * cni.h - the CNI plugin's two parsers, shared by the plugin (amesh-cni)
 * and the node agent (mesh-cni), and fuzzed (fuzz/fuzz_cni.c):
 *
 *   cni_conf_*  the network configuration a container runtime writes on the
 *               plugin's stdin (CNI spec 1.0: cniVersion, name, type,
 *               prevResult, and this plugin's own settings)
 *   cni_req_*   the plugin's request to the node agent and its answer: one
 *   cni_reply_* JSON object per SOCK_SEQPACKET datagram, versioned
 *
 * Every size a peer controls has a cap (input length, nesting depth, string
 * lengths, number of addresses and excluded namespaces).
 */
#ifndef MESH_LIB_CNI_H
#define MESH_LIB_CNI_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* Error codes of the CNI spec (1.0, "Error"): the plugin prints them in its error JSON. */
enum cni_code {
    CNI_OK = 0,
    CNI_ERR_VERSION = 1,    /* incompatible CNI version */
    CNI_ERR_FIELD = 2,      /* unsupported field in the network configuration */
    CNI_ERR_CONTAINER = 3,  /* container unknown or does not exist */
    CNI_ERR_ENV = 4,        /* invalid necessary environment variables */
    CNI_ERR_IO = 5,         /* I/O failure */
    CNI_ERR_DECODE = 6,     /* failed to decode content */
    CNI_ERR_CONFIG = 7,     /* invalid network configuration */
    CNI_ERR_TRY_AGAIN = 11, /* try again later */
    CNI_ERR_AGENT = 100,    /* plugin-specific: the node agent refused or failed the pod */
};

#define CNI_STDIN_MAX      (256 * 1024) /* a network configuration with its prevResult */
#define CNI_DEPTH_MAX      32           /* JSON nesting, checked before jansson parses */
#define CNI_IPS_MAX        16           /* addresses taken from prevResult */
#define CNI_EXCLUDE_MAX    64           /* excludeNamespaces entries */
#define CNI_TIMEOUT_MS_MAX 60000
#define CNI_TIMEOUT_MS     15000 /* default: above the agent's own waits (see mesh-cni) */
#define CNI_SOCKET_DEFAULT "/var/run/amesh/cni-plugin.sock"
#define CNI_VERSIONS       "0.3.0", "0.3.1", "0.4.0", "1.0.0"
#define CNI_VERSION_LATEST "1.0.0"

/* An address without its prefix length, as inet_ntop writes it. */
typedef char cni_ip[INET6_ADDRSTRLEN];

struct cni_conf {
    json_t *root;        /* the whole configuration (owned) */
    const char *version; /* cniVersion, one of CNI_VERSIONS */
    const char *name;    /* the network's name */
    const char *type;    /* the plugin's name */
    json_t *prev_result; /* inside root; NULL when absent */
    char socket[108];    /* agentSocket: the node agent's unix socket */
    unsigned timeout_ms; /* timeoutMs: the whole exchange with the agent */
    int log_level;       /* logLevel as log_parse_level() reads it; -1 when not set */
    const char *exclude[CNI_EXCLUDE_MAX]; /* excludeNamespaces: never sent to the agent */
    size_t n_exclude;
    cni_ip ips[CNI_IPS_MAX]; /* prevResult.ips[].address */
    size_t n_ips;
};

/* True if |v| is a version this plugin speaks. */
bool cni_version_supported(const char *v);

/*
 * True when |buf| (|n| bytes) nests arrays and objects no deeper than |max|
 * (strings are skipped, escapes included). jansson recurses without a
 * configurable limit, so input is checked with this first.
 */
bool cni_json_depth_ok(const char *buf, size_t n, int max);

/*
 * Parses a network configuration. Returns CNI_OK, or a CNI error code with
 * |err| saying what is wrong (CNI_ERR_DECODE: not JSON or over the caps;
 * CNI_ERR_VERSION: cniVersion not supported; CNI_ERR_CONFIG: a field with a
 * wrong type or value, a malformed prevResult). |c| must be freed with
 * cni_conf_free() whatever the result.
 */
int cni_conf_parse(struct cni_conf *c, const char *buf, size_t n, char *err, size_t errlen);
void cni_conf_free(struct cni_conf *c);
/* True if namespace |ns| is in excludeNamespaces. */
bool cni_conf_excluded(const struct cni_conf *c, const char *ns);

/* ---- the plugin <-> node agent exchange ---------------------------------------------- */

#define CNI_MSG_VERSION 1
#define CNI_MSG_MAX     8192 /* one datagram, either way */

enum cni_cmd { CNI_CMD_ADD = 1, CNI_CMD_DEL, CNI_CMD_CHECK };

struct cni_req {
    enum cni_cmd cmd;
    char ns[64];            /* K8S_POD_NAMESPACE: a DNS label */
    char name[254];         /* K8S_POD_NAME: a DNS subdomain */
    char uid[128];          /* K8S_POD_UID, "" when the runtime did not pass one */
    char container_id[256]; /* CNI_CONTAINERID */
    char netns[256];        /* CNI_NETNS: an absolute path; "" allowed for DEL */
    cni_ip ips[CNI_IPS_MAX];
    size_t n_ips;
};

/* What the agent decided. */
enum cni_verdict {
    CNI_V_ENROLLED = 1, /* rules in the pod, ztunnel acked it: the app may start */
    CNI_V_NOT_ENROLLED, /* not an ambient pod: nothing done (the netns is remembered) */
    CNI_V_PENDING,      /* the pod is not in the agent's store yet: enrolled when it appears */
    CNI_V_DONE,         /* DEL: forgotten; CHECK: as it should be */
    CNI_V_RETRY,        /* transient failure (no ztunnel, rules failed): try again later */
    CNI_V_FAILED,       /* refused for good (CHECK found the pod out of the mesh, bad request) */
};

struct cni_reply {
    enum cni_verdict verdict;
    char message[512];
};

const char *cni_cmd_name(enum cni_cmd cmd);
const char *cni_verdict_name(enum cni_verdict v);

/*
 * Fills |r|'s strings after checking them (the rules above); returns 0 or
 * -EINVAL with |err| naming the field. |ips| may be NULL when |n_ips| is 0.
 */
int cni_req_set(struct cni_req *r, enum cni_cmd cmd, const char *ns, const char *name,
                const char *uid, const char *container_id, const char *netns, const cni_ip *ips,
                size_t n_ips, char *err, size_t errlen);

/* Encode into |out| (|cap| bytes, NUL-terminated): length, or -MESH_ELIMIT. */
int cni_req_encode(const struct cni_req *r, char *out, size_t cap);
int cni_reply_encode(const struct cni_reply *r, char *out, size_t cap);
/* Decode one datagram: 0, or -MESH_EPROTO with |err| saying why. */
int cni_req_decode(struct cni_req *r, const char *buf, size_t n, char *err, size_t errlen);
int cni_reply_decode(struct cni_reply *r, const char *buf, size_t n, char *err, size_t errlen);

/* ---- the node's CNI configuration: our entry in the primary chain (cni_chain.c) ---------- */

#define CNI_PLUGIN_TYPE  "amesh-cni"
#define CNI_CONFFILE_MAX (1024 * 1024) /* a file of the conf dir read at most this long */
#define CNI_PLUGINS_MAX  64            /* plugins in one chain */

/* The settings our entry carries (what cni_conf_parse() reads back on the plugin's stdin). */
struct cni_chain_entry {
    const char *socket;         /* agentSocket */
    const char *log_level;      /* logLevel; NULL: not written */
    const char *const *exclude; /* excludeNamespaces; none: not written */
    size_t n_exclude;
};

enum cni_chain_rc {
    CNI_CHAIN_ERROR = -1,    /* |err| says why; the file is not ours to fix */
    CNI_CHAIN_UNCHANGED = 0, /* already as wanted: leave the file alone */
    CNI_CHAIN_REWRITTEN = 1, /* *|out| holds the new file (malloc'd, NUL-terminated) */
};

/*
 * Puts our entry, built from |e|, last in the chain of the configuration
 * |buf| (|n| bytes): a .conflist (|is_list|) or a single-plugin .conf, which
 * becomes a .conflist (cniVersion and name at the top, the rest of it the
 * first plugin). An entry of ours elsewhere in the chain or with other
 * settings is replaced; one already last and equal leaves the file
 * UNCHANGED. Strict: a JSON object within CNI_CONFFILE_MAX and
 * CNI_DEPTH_MAX, no duplicate keys, string cniVersion (one amesh-cni
 * speaks) and name, plugins a list of objects each with a string type.
 */
enum cni_chain_rc cni_chain_insert(const char *buf, size_t n, bool is_list,
                                   const struct cni_chain_entry *e, char **out, size_t *outlen,
                                   char *err, size_t errlen);
/*
 * Takes every entry of ours out of the .conflist |buf|: REWRITTEN with the
 * chain without them, UNCHANGED when there was none, or ERROR.
 */
enum cni_chain_rc cni_chain_remove(const char *buf, size_t n, char **out, size_t *outlen, char *err,
                                   size_t errlen);

#endif
