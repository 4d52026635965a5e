/* plain_line.c: see plain_line.h. On a terminal in canonical mode each
 * read() returns at most one line, so a line is rarely split or followed
 * by another; both cases are handled all the same (a pipe, a paste). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "client/plain_line.h"

static char *text;          /* bytes read and not yet handed out */
static size_t text_len, text_cap;

/* Hands out the first line of text, if it is whole. */
static int take_line(char **line)
{
    char *newline = text_len ? memchr(text, '\n', text_len) : NULL;
    if (newline == NULL)
        return 0;
    size_t len = (size_t)(newline - text);
    char *copy = malloc(len + 1);
    if (copy == NULL) {
        fputs("bosk: out of memory reading a line\n", stderr);
        *line = NULL;                   /* ends the session cleanly */
        return 1;
    }
    memcpy(copy, text, len);
    copy[len] = '\0';
    text_len -= len + 1;
    memmove(text, newline + 1, text_len);
    *line = copy;
    return 1;
}

/* At end of input, an unfinished last line still counts (as fgets'). */
static int take_rest(char **line)
{
    *line = NULL;
    if (text_len == 0)
        return 1;
    if (text_len == text_cap) {
        char *grown = realloc(text, text_cap + 1);
        if (grown == NULL) {
            fputs("bosk: out of memory reading a line\n", stderr);
            return 1;
        }
        text = grown;
        text_cap++;
    }
    text[text_len++] = '\n';
    return take_line(line);
}

int plain_line_begin(const char *prompt, char **line)
{
    if (fputs(prompt, stdout) == EOF || fflush(stdout) != 0)
        clearerr(stdout);               /* a closed terminal: input decides */
    return take_line(line);
}

int plain_line_feed(int fd, char **line)
{
    if (text_cap - text_len < 512) {
        size_t cap = text_cap ? text_cap * 2 : 1024;
        char *grown = realloc(text, cap);
        if (grown == NULL) {
            fputs("bosk: out of memory reading a line\n", stderr);
            *line = NULL;
            return 1;
        }
        text = grown;
        text_cap = cap;
    }
    ssize_t n = read(fd, text + text_len, text_cap - text_len);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n <= 0)                         /* end of input, or a read error */
        return take_rest(line);
    text_len += (size_t)n;
    return take_line(line);
}

void plain_line_cancel(void)
{
    text_len = 0;
    if (fputc('\n', stdout) == EOF || fflush(stdout) != 0)
        clearerr(stdout);
}
