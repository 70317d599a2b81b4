/* control.h: the control socket (owner-only unix socket) behind `cwlogd status`
 * and `cwlogd metrics`, and the client side of both commands. */
#pragma once

#include "util.h"

typedef struct agent agent;
typedef struct control control;

/* Listen on `path` (mode 0600; a stale socket file is replaced). NULL on
 * failure, logged; the agent runs on without it. */
control *control_new(agent *a, const char *path);
void control_free(control *c); /* removes the socket file */

/* A Prometheus label value, with backslash, quote and newline escaped. */
void control_prom_label(buf *out, const char *v);

/* The two reports, also used by tests. */
void control_status(agent *a, buf *out);
void control_metrics(agent *a, buf *out);

/* Client: send `command` ("status" or "metrics") to the socket and copy the
 * answer to stdout. 0, or a negative errno (message printed). */
int control_client(const char *path, const char *command);
