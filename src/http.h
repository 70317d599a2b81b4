/* http.h: asynchronous HTTP(S) on the event loop with libcurl's multi
 * interface: keep-alive connections shared by all requests, no thread, no
 * blocking call. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

typedef struct http http;
typedef struct http_call http_call;

typedef struct http_response {
    long status;             /* HTTP status; 0 when no response arrived */
    int transport_error;     /* 0, or the CURLcode of a transport failure */
    const char *error;       /* text for transport_error (curl's error buffer), or NULL */
    const char *body;        /* response body, NUL-terminated; never NULL */
    size_t body_len;
    uint64_t elapsed_ms;
    const struct http_call *call; /* for http_response_header() */
} http_response;

/* Called once per http_send(), from the loop (never from inside http_send),
 * unless the call is cancelled first. `r` is valid only during the call. */
typedef void (*http_done_fn)(const http_response *r, void *userdata);

typedef struct http_request {
    const char *method;               /* "GET", "PUT", "POST" */
    const char *url;
    const char *const *headers;       /* "Name: value" lines */
    size_t n_headers;
    const void *body;                 /* not copied: must stay valid until done or cancelled */
    size_t body_len;
    uint64_t timeout_ms;              /* the whole request; 0 = 30 s */
    uint64_t connect_timeout_ms;      /* 0 = 5 s */
    const char *ca_file;              /* extra CA bundle; NULL = the system's. TLS is always verified */
    size_t max_response;              /* bytes; a longer body fails the call; 0 = 4 MiB */
    /* Credentials (IMDS, the ECS endpoint): never sent through a proxy, and
     * the headers and the response are wiped from memory once done. */
    bool secret;
} http_request;

http *http_new(loop *l);
/* Cancels every pending call without calling back. NULL is a no-op. */
void http_free(http *h);

/* Start a request. Returns a handle valid until the callback has run or the
 * call is cancelled; NULL only when the request cannot even be set up (the
 * reason is logged). */
http_call *http_send(http *h, const http_request *req, http_done_fn fn, void *userdata);
void http_cancel(http_call *c);
size_t http_in_flight(const http *h);

/* A response header's value (case-insensitive name, first occurrence,
 * trimmed), valid during the callback; NULL when absent. */
const char *http_response_header(const http_response *r, const char *name);
