/* uploader.h: the CloudWatch Logs output: per log stream batches pulled from
 * the sources' rings, one PutLogEvents in flight per stream, retries, group and
 * stream creation, and acknowledgements that move the checkpoints. */
#pragma once

#include "cloudwatch.h"
#include "output.h"

typedef struct uploader_stats {
    uint64_t requests, retries, events_sent, rejected, markers, streams;
    uint64_t throttled; /* answers that said the account is over a rate quota */
} uploader_stats;

output *uploader_new(agent *a, cw_client *cw);
/* Credentials or the region became available: send what waits for them. */
void uploader_wake(output *o);
/* The largest event the service accepts, learnt from "Log event too large". */
uint64_t uploader_max_event(const output *o);
const uploader_stats *uploader_get_stats(const output *o);
