/* main.c: command line: run the agent, --once, --dry-run, --check-config. */
#include <getopt.h>
#include <jansson.h>
#include <malloc.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sysexits.h>

#include "agent.h"
#include "control.h"
#include "config.h"
#include "log.h"

#define DEFAULT_CONFIG "/etc/cwlogd/cwlogd.conf"

static void usage(FILE *f)
{
    fprintf(f,
            "Usage: cwlogd [OPTIONS]\n"
            "       cwlogd status|metrics [-c FILE] [--socket PATH]\n"
            "Forward container and host logs to Amazon CloudWatch Logs.\n\n"
            "  status              per-source and per-stream table from the running agent\n"
            "  metrics             the running agent's counters in Prometheus text format\n"
            "  -c, --config FILE   configuration file (default " DEFAULT_CONFIG ");\n"
            "                      drop-ins are read from conf.d/ beside it\n"
            "      --check-config  validate the configuration and exit (0, or 78 on errors)\n"
            "      --once          read every source to its current end, deliver,\n"
            "                      checkpoint and exit\n"
            "      --dry-run       print records as JSON lines on stdout instead of\n"
            "                      uploading (with checkpoints of its own)\n"
            "      --socket PATH   control socket for status/metrics (default: the\n"
            "                      configuration's control_socket)\n"
            "      --version       print the version and exit\n"
            "  -h, --help          show this help\n");
}

static int check_config(const char *path)
{
    config *c = NULL;
    config_errors errs = {0};
    int r = config_load(path, &c, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msgs[i]);
    config_errors_free(&errs);
    if (r < 0) {
        fprintf(stderr, "cwlogd: %s: configuration is not valid\n", path);
        return EX_CONFIG;
    }
    for (size_t i = 0; i < c->n_warnings; i++)
        fprintf(stderr, "%s\n", c->warnings[i]);
    printf("%s: configuration is valid (%zu source%s)\n", path, c->n_sources,
           c->n_sources == 1 ? "" : "s");
    config_free(c);
    return 0;
}

/* The agent holds a descriptor per file it reads: 1,000 containers need more
 * than the soft limit of 1024 that shells, containers and systemd's defaults
 * give. Nothing here uses select(), so the soft limit goes up to the hard
 * one, as systemd advises; the unit's LimitNOFILE= sets both. */
static void raise_nofile_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        log_warning_errno(errno, "cannot raise the open-file limit to %llu: %m",
                          (unsigned long long)rl.rlim_max);
}

/* jansson parses the credentials' answers: what it frees may have held a
 * secret key or a token. */
static void free_wiped(void *p)
{
    if (p) {
        explicit_bzero(p, malloc_usable_size(p));
        free(p);
    }
}

int main(int argc, char **argv)
{
    enum { OPT_CHECK = 256, OPT_ONCE, OPT_DRY_RUN, OPT_VERSION, OPT_SOCKET };
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, OPT_CHECK},
        {"once", no_argument, NULL, OPT_ONCE},
        {"dry-run", no_argument, NULL, OPT_DRY_RUN},
        {"version", no_argument, NULL, OPT_VERSION},
        {"socket", required_argument, NULL, OPT_SOCKET},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    /* Ring blocks and request bodies are freed and allocated again as
     * buffers drain and fill; without this glibc hands the top of the heap
     * back to the kernel (or unmaps a body) each time and every refill
     * page-faults it in again: measured, a third more CPU per line. */
    mallopt(M_TRIM_THRESHOLD, 16 * 1024 * 1024);
    mallopt(M_MMAP_THRESHOLD, 4 * 1024 * 1024);
    /* Credentials live in this process's memory: no core dump of it, and no
     * ptrace or /proc/PID/mem by other processes of the service user. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    json_set_alloc_funcs(malloc, free_wiped);
    agent_options ao = {.config_path = DEFAULT_CONFIG};
    bool check = false;
    const char *socket_path = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            ao.config_path = optarg;
            break;
        case OPT_CHECK:
            check = true;
            break;
        case OPT_ONCE:
            ao.once = true;
            break;
        case OPT_DRY_RUN:
            ao.dry_run = true;
            break;
        case OPT_SOCKET:
            socket_path = optarg;
            break;
        case OPT_VERSION:
            printf("cwlogd %s\n", CWLOGD_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EX_USAGE;
        }
    }
    if (optind < argc &&
        (strcmp(argv[optind], "status") == 0 || strcmp(argv[optind], "metrics") == 0) &&
        optind + 1 == argc) {
        config *cfg = NULL;
        config_errors errs = {0};
        if (!socket_path && config_load(ao.config_path, &cfg, &errs) == 0)
            socket_path = cfg->control_socket;
        config_errors_free(&errs);
        int r = control_client(socket_path ? socket_path : "/run/cwlogd/control.sock",
                               argv[optind]);
        config_free(cfg);
        return r < 0 ? EX_UNAVAILABLE : 0;
    }
    if (optind < argc) {
        fprintf(stderr, "cwlogd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return EX_USAGE;
    }
    if (check)
        return check_config(ao.config_path);
    raise_nofile_limit();
    ao.out = stdout;
    agent *a = NULL;
    int r = agent_new(&ao, &a);
    if (r == -EINVAL)
        return EX_CONFIG;
    if (r < 0)
        return 1;
    r = agent_run(a);
    agent_free(a);
    return r == 0 ? 0 : 1;
}
