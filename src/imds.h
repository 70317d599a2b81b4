/* imds.h: the EC2 instance metadata service, version 2 only: a session token
 * from PUT /latest/api/token, reused until it expires or is refused (401). */
#pragma once

#include "http.h"
#include "loop.h"

typedef struct imds imds;

/* endpoint: the config's imds_endpoint, else $AWS_EC2_METADATA_SERVICE_ENDPOINT,
 * else http://169.254.169.254. With $AWS_EC2_METADATA_DISABLED=true every
 * request fails with -ENODEV. */
imds *imds_new(loop *l, http *h, const char *endpoint);
void imds_free(imds *m); /* pending requests are cancelled without callbacks */
const char *imds_endpoint(const imds *m);

/* err: 0 and the body (NUL-terminated, valid during the call), or a negative
 * errno: -ETIMEDOUT / -ECONNREFUSED / -EIO for transport failures, -ENOENT for
 * 404, -EACCES for a token that keeps being refused, -EPROTO for an answer that
 * makes no sense. */
typedef void (*imds_fn)(int err, const char *body, size_t len, void *userdata);

/* GET a metadata path such as "/latest/meta-data/instance-id". */
void imds_get(imds *m, const char *path, imds_fn fn, void *userdata);
void imds_cancel_all(imds *m, void *userdata); /* drop pending callbacks for userdata */

/* The HTTP status of the last answer that was not 200 (0: none yet), for
 * error messages. */
long imds_last_status(const imds *m);
