/*
 * route_regex.c - the RegularExpression of path, header and query matches.
 *
 * Istio and Envoy use RE2: linear time, full match, no backtracking. Debian
 * packages RE2 only with a C++ API, so this is PCRE2 (libpcre2-8) used so that
 * it keeps RE2's answers and bounds its CPU:
 *   - each pattern is compiled twice. The JIT copy (pcre2_match, ~0.3 us for
 *     a 20-byte path, 5x faster than the DFA) answers first under a match
 *     limit of RX_JIT_LIMIT backtracking calls. If it gives up (a pattern
 *     that backtracks: (x+x+)+y on x...xyy), the automaton copy answers:
 *     pcre2_dfa_match() never backtracks, so the answer is the right one,
 *     not a "no match" a backtracking engine would invent.
 *   - the automaton is still not RE2's cached DFA: each character costs the
 *     live states squared (its duplicate check), and (?:a*){200} took 1.1 s
 *     on 16 KB. So: the compiled pattern (auto-callouts included) is at most
 *     RX_MAX_CODE bytes, which also sizes the per-thread workspace so that it
 *     can never run out (before that bound, (?:a?){400}a{400} ran out and
 *     failed to match); subjects longer than ROUTE_MAX_SUBJECT never match;
 *     and an auto-callout before every pattern item counts the steps of one
 *     whole request (all its rules' regexes, JIT runs charged too) against
 *     RX_STEP_BUDGET. Past the budget a regex counts as no match and the
 *     table's regex_errors rises. Worst case measured (gcc -O2, this 2-vCPU
 *     class): ~22 ms of CPU per request on a 16 KB path; ordinary patterns
 *     never get near the budget.
 *   - PCRE2 10.42's DFA ignores ENDANCHORED ((.*a){2} "matched" /aab), so
 *     every match is checked to span the whole subject (the longest comes
 *     first).
 *   - the pattern is compiled ANCHORED | ENDANCHORED: the whole path or value
 *     must match, as with RE2::FullMatch (Envoy's safe_regex).
 *   - constructs RE2 refuses are refused here too, with a message:
 *     backreferences (\1, \g, \k, (?P=), lookaround, atomic groups,
 *     possessive quantifiers, recursion, conditionals, callouts, comments,
 *     (*VERBS) and \C; so a route that works here works in RE2 and back.
 * Dialect differences accepted (PCRE2 vs RE2): UTF-8 mode like RE2, but a
 * subject that is not valid UTF-8 never matches (RE2 would try); \d \w \s are
 * ASCII in both; $ matches only at the very end (DOLLAR_ENDONLY, as RE2);
 * PCRE2 also accepts a few escapes RE2 does not (\h, \R, \X, \N{U+..}, \e) and
 * RE2's \pN / \p{Greek} classes map to PCRE2's; (?U) means ungreedy in both;
 * inline flags other than i, m, s, U are refused. Repetition counts above
 * RE2's 1000 are refused by PCRE2's own limit of 65535 only, but the compiled
 * size cap stops long expansions such as a{1000}.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "route/route_internal.h"

/*
 * The DFA keeps two lists (this character, the next) of 3-int states, one
 * state at most per opcode and count, and every opcode takes at least one
 * byte of compiled pattern: so a workspace of 2 x 3 ints per compiled byte
 * can never run out, and a pattern stays under RX_MAX_CODE bytes. Measured
 * before this bound: (?:a?){400}a{400} (3.3 KB compiled) ran out of a
 * 6000-int workspace and failed to match 400 a's.
 */
#ifndef RX_MAX_CODE
#define RX_MAX_CODE 2048 /* bytes of compiled pattern, auto-callouts included (INFO_SIZE) */
#endif
#define RX_WS (2 * 3 * RX_MAX_CODE + 64)
#ifndef RX_STEP_BUDGET
#define RX_STEP_BUDGET 100000 /* pattern items visited per request, all its regexes together */
#endif
#define RX_MATCH_LIM 200000
#define RX_NEST_LIM  32

#define RX_JIT_LIMIT 10000 /* pcre2_match() backtracking calls before falling back to the DFA */

struct route_regex {
    pcre2_code *code; /* with auto-callouts: pcre2_dfa_match(), the step budget */
    pcre2_code *fast; /* JIT-compiled, no callouts; NULL if JIT is unavailable */
};

static _Thread_local int rx_ws[RX_WS];
static _Thread_local pcre2_match_data *rx_md;
static _Thread_local pcre2_match_context *rx_mc;
static _Thread_local pcre2_match_context *rx_mc_jit;

/* Called before every pattern item the matcher visits: the CPU budget of one match. */
static int
rx_step(pcre2_callout_block *b, void *data)
{
    unsigned long *steps = data;
    (void)b;
    return ++*steps > RX_STEP_BUDGET ? PCRE2_ERROR_CALLOUT : 0;
}

/* Scans |p| for what RE2 does not support; returns NULL or the reason. */
static const char *
rx_unsupported(const char *p, size_t n)
{
    int prev_quant = 0; /* 1 after a quantifier, 2 after a lazy one */

    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        int q = 0;
        if (c == '\\') {
            if (i + 1 >= n)
                return NULL; /* PCRE2 reports the trailing backslash */
            char e = p[++i];
            if ((e >= '1' && e <= '9') || e == 'g' || e == 'k')
                return "backreferences are not supported (RE2)";
            if (e == 'C')
                return "\\C is not supported (RE2)";
            if (e == 'Q') { /* literal up to \E */
                while (i + 2 < n && !(p[i + 1] == '\\' && p[i + 2] == 'E'))
                    i++;
                i += 2;
            }
        } else if (c == '[') {
            size_t j = i + 1;
            if (j < n && p[j] == '^')
                j++;
            if (j < n && p[j] == ']')
                j++;
            for (; j < n && p[j] != ']'; j++) {
                if (p[j] == '\\')
                    j++;
                else if (p[j] == '[' && j + 1 < n && p[j + 1] == ':') {
                    const char *end = memmem(p + j + 2, n - j - 2, ":]", 2);
                    if (end != NULL)
                        j = (size_t)(end - p) + 1;
                }
            }
            i = j;
        } else if (c == '(' && i + 1 < n && p[i + 1] == '*') {
            return "(*VERB) items are not supported (RE2)";
        } else if (c == '(' && i + 1 < n && p[i + 1] == '?') {
            size_t j = i + 2;
            if (j < n && p[j] == ':') {
                /* non-capturing group */
            } else if (j < n && (p[j] == '<' || (p[j] == 'P' && j + 1 < n && p[j + 1] == '<'))) {
                j += p[j] == 'P' ? 2 : 1;
                if (j >= n || !((p[j] >= 'a' && p[j] <= 'z') || (p[j] >= 'A' && p[j] <= 'Z') ||
                                p[j] == '_'))
                    return "lookbehind assertions are not supported (RE2)";
            } else {
                size_t k = j;
                while (k < n && strchr("imsU-", p[k]) != NULL)
                    k++;
                if (k == j || k >= n || (p[k] != ':' && p[k] != ')'))
                    return "only (?:...), named groups and the flags i, m, s, U are supported "
                           "after \"(?\" (RE2: no lookaround, atomic groups, recursion, "
                           "conditionals or comments)";
            }
        } else if (c == '*' || c == '+' || c == '?' || c == '}') {
            if (c == '+' && prev_quant == 1)
                return "possessive quantifiers are not supported (RE2)";
            q = (c == '?' && prev_quant == 1) ? 2 : 1;
        }
        prev_quant = q;
    }
    return NULL;
}

int
route_regex_compile(const char *pattern, size_t len, struct route_regex **out, char *err,
                    size_t errlen)
{
    const char *why;
    int ecode;
    PCRE2_SIZE eoff;
    size_t size = 0;

    *out = NULL;
    if (len > ROUTE_MAX_REGEX) {
        snprintf(err, errlen, "regex of %zu bytes, more than %d", len, ROUTE_MAX_REGEX);
        return -MESH_ELIMIT;
    }
    if ((why = rx_unsupported(pattern, len)) != NULL) {
        snprintf(err, errlen, "regex \"%.*s\": %s", (int)(len > 64 ? 64 : len), pattern, why);
        return -MESH_ECONFIG;
    }
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    CHECK(cc != NULL);
    pcre2_set_parens_nest_limit(cc, RX_NEST_LIM);
    pcre2_set_max_pattern_length(cc, ROUTE_MAX_REGEX);
    pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, len,
                                     PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED |
                                         PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_BACKSLASH_C |
                                         PCRE2_NO_AUTO_CAPTURE | PCRE2_AUTO_CALLOUT,
                                     &ecode, &eoff, cc);
    pcre2_compile_context_free(cc);
    if (code == NULL) {
        PCRE2_UCHAR msg[128];
        if (pcre2_get_error_message(ecode, msg, sizeof(msg)) < 0)
            snprintf((char *)msg, sizeof(msg), "error %d", ecode);
        snprintf(err, errlen, "regex \"%.*s\": %s at offset %zu", (int)(len > 64 ? 64 : len),
                 pattern, (const char *)msg, (size_t)eoff);
        return -MESH_ECONFIG;
    }
    uint32_t backrefs = 0;
    pcre2_pattern_info(code, PCRE2_INFO_SIZE, &size);
    pcre2_pattern_info(code, PCRE2_INFO_BACKREFMAX, &backrefs);
    if (size > RX_MAX_CODE || backrefs > 0) {
        pcre2_code_free(code);
        snprintf(err, errlen, "regex \"%.*s\": %s", (int)(len > 64 ? 64 : len), pattern,
                 backrefs ? "backreferences are not supported (RE2)"
                          : "compiles to more than 2 KB (simplify it or lower repeat counts)");
        return backrefs ? -MESH_ECONFIG : -MESH_ELIMIT;
    }
    struct route_regex *re = xmalloc(sizeof(*re));
    re->code = code;
    re->fast = pcre2_compile((PCRE2_SPTR)pattern, len,
                             PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED |
                                 PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_BACKSLASH_C |
                                 PCRE2_NO_AUTO_CAPTURE,
                             &ecode, &eoff, NULL);
    if (re->fast != NULL && pcre2_jit_compile(re->fast, PCRE2_JIT_COMPLETE) != 0) {
        pcre2_code_free(re->fast);
        re->fast = NULL;
    }
    *out = re;
    return 0;
}

static void
rx_thread_init(void)
{
    if (rx_md != NULL)
        return;
    rx_md = pcre2_match_data_create(1, NULL);
    rx_mc = pcre2_match_context_create(NULL);
    rx_mc_jit = pcre2_match_context_create(NULL);
    CHECK(rx_md != NULL && rx_mc != NULL && rx_mc_jit != NULL);
    pcre2_set_match_limit(rx_mc, RX_MATCH_LIM);
    pcre2_set_depth_limit(rx_mc, RX_NEST_LIM);
    pcre2_set_match_limit(rx_mc_jit, RX_JIT_LIMIT);
}

/* 1 / 0 for a definite answer that spans all |n| bytes; -1 for a limit or error. */
static int
rx_result(int rc, size_t n)
{
    if (rc >= 0) /* the longest match comes first: it must end at the end */
        return pcre2_get_ovector_pointer(rx_md)[0] == 0 &&
               pcre2_get_ovector_pointer(rx_md)[1] == n;
    if (rc == PCRE2_ERROR_NOMATCH || rc == PCRE2_ERROR_PARTIAL)
        return 0;
    if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21)
        return 0; /* not UTF-8: never matches (documented above) */
    return -1;
}

int
route_regex_match_engine(const struct route_regex *re, const char *s, size_t n, bool dfa,
                         unsigned long *steps)
{
    static const char empty[1];

    if (n > ROUTE_MAX_SUBJECT)
        return -1;
    rx_thread_init();
    if (!dfa) {
        if (re->fast == NULL)
            return -1;
        *steps += 1 + n / 64;
        return rx_result(pcre2_match(re->fast, (PCRE2_SPTR)(s ? s : empty), n, 0, 0, rx_md,
                                     rx_mc_jit),
                         n);
    }
    if (*steps >= RX_STEP_BUDGET)
        return -1;
    pcre2_set_callout(rx_mc, rx_step, steps);
    return rx_result(pcre2_dfa_match(re->code, (PCRE2_SPTR)(s ? s : empty), n, 0,
                                     PCRE2_ANCHORED | PCRE2_ENDANCHORED, rx_md, rx_mc, rx_ws,
                                     RX_WS),
                     n);
}

int
route_regex_match(const struct route_regex *re, const char *s, size_t n, unsigned long *steps)
{
    if (*steps >= RX_STEP_BUDGET)
        return -1;
    int rc = route_regex_match_engine(re, s, n, false, steps);
    if (rc >= 0)
        return rc;
    if (re->fast != NULL)
        *steps += RX_JIT_LIMIT / 4; /* the JIT gave up: charge what it spent */
    return route_regex_match_engine(re, s, n, true, steps);
}

bool
route_regex_has_jit(const struct route_regex *re)
{
    return re->fast != NULL;
}

void
route_regex_free(struct route_regex *re)
{
    if (re == NULL)
        return;
    pcre2_code_free(re->code);
    pcre2_code_free(re->fast);
    free(re);
}
