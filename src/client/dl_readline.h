/* dl_readline.h: GNU readline loaded at run time.
 *
 * bosk does not link libreadline: only `bosk repl` on a terminal edits
 * lines, and every other process (`bosk run`, the janitor's workers forked
 * for each cleaning) would carry the mappings of libreadline and libtinfo
 * for nothing, which makes each fork slower. The first caller of
 * dl_readline() dlopen's libreadline.so.8 and resolves the functions in
 * DL_READLINE_FUNCS and the addresses of the variables in
 * DL_READLINE_VARS, once per process (pthread_once). Callers then go
 * through the table: api->add_history(line) instead of add_history(line),
 * *api->line_buffer instead of rl_line_buffer. */
#ifndef BOSK_DL_READLINE_H
#define BOSK_DL_READLINE_H

#include <stddef.h>
#include <stdio.h>
#include <readline/readline.h>
#include <readline/history.h>

/* X(member, readline symbol) for every function bosk calls. */
#define DL_READLINE_FUNCS(X) \
    X(callback_handler_install, rl_callback_handler_install) \
    X(callback_handler_remove, rl_callback_handler_remove) \
    X(callback_read_char, rl_callback_read_char) \
    X(callback_sigcleanup, rl_callback_sigcleanup) \
    X(free_line_state, rl_free_line_state) \
    X(cleanup_after_signal, rl_cleanup_after_signal) \
    X(completion_matches, rl_completion_matches) \
    X(using_history, using_history) \
    X(add_history, add_history) \
    X(history_list, history_list)

/* X(member, readline variable) for every variable bosk reads or sets;
 * the member holds the variable's address. */
#define DL_READLINE_VARS(X) \
    X(readline_name, rl_readline_name) \
    X(catch_signals, rl_catch_signals) \
    X(attempted_completion_function, rl_attempted_completion_function) \
    X(attempted_completion_over, rl_attempted_completion_over) \
    X(completion_suppress_append, rl_completion_suppress_append) \
    X(basic_word_break_characters, rl_basic_word_break_characters) \
    X(line_buffer, rl_line_buffer) \
    X(instream, rl_instream) \
    X(outstream, rl_outstream)

typedef struct {
#define DL_READLINE_MEMBER(member, symbol) __typeof__(symbol) *member;
    DL_READLINE_FUNCS(DL_READLINE_MEMBER)
    DL_READLINE_VARS(DL_READLINE_MEMBER)
#undef DL_READLINE_MEMBER
} dl_readline_api;

/* The loaded API, or NULL with a message in err (library or a symbol
 * missing). The result is the same on every call. */
const dl_readline_api *dl_readline(char *err, size_t err_len);

#endif
