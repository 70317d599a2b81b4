/* output.h: where records go once they leave a source's ring. */
#pragma once

#include <stdbool.h>
#include <stdio.h>

typedef struct agent agent;
typedef struct source source;
typedef struct output output;

/* --dry-run: one JSON object per record on `out`:
 * {"group":"…","stream":"…","timestamp":1732440000123,"message":"…"} */
output *output_dryrun_new(agent *a, FILE *out);
void output_free(output *o);
/* The source's ring has records: take what the output can. */
void output_kick(output *o, source *s);
/* Nothing is in flight. */
bool output_idle(const output *o);
/* Write out anything buffered. 0 or a negative errno. */
int output_flush(output *o);
