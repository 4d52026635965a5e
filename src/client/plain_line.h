/* plain_line.h: lines read from a file descriptor without GNU readline,
 * for `bosk repl` on a terminal when libreadline cannot be loaded. The
 * caller polls the descriptor (readline.c's edit_line, which also handles
 * Ctrl-C) and feeds it here; text after a newline waits for the next
 * line. One reader per process: the state is static. */
#ifndef BOSK_PLAIN_LINE_H
#define BOSK_PLAIN_LINE_H

/* Writes the prompt to stdout. 1 when a whole line is already buffered
 * (*line set, malloc'ed, without its newline), else 0. */
int plain_line_begin(const char *prompt, char **line);

/* Reads what fd has. 0 while the line is unfinished; 1 when it is done:
 * *line is the line (malloc'ed, no newline), or NULL at end of input. */
int plain_line_feed(int fd, char **line);

/* Drops the unfinished line (Ctrl-C) and ends the output line. */
void plain_line_cancel(void);

#endif
