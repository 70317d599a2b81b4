/* test_template.c: group/stream templates: variables, ECS values, the
 * placeholder, and CloudWatch's naming rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "template.h"
#include "util.h"

static const char *labels(void *userdata, const char *kind, const char *key)
{
    if (strcmp(kind, "label") == 0 && strcmp(key, "team") == 0)
        return "payments";
    return NULL;
}

static void expect(const char *tmpl, const template_vars *v, template_kind k, const char *want)
{
    _cleanup_free_ char *got = template_expand(tmpl, v, k);
    assert_string_equal(got, want);
}

static void test_variables_expand_from_container_and_ecs_labels(void **state)
{
    template_vars v = {
        .container_id = "0123456789abcdef0123",
        .container_name = "web",
        .ecs_cluster = "arn:aws:ecs:us-east-1:123456789012:cluster/prod",
        .ecs_task_arn = "arn:aws:ecs:us-east-1:123456789012:task/prod/5d2f0c1e",
        .ecs_task_family = "shop",
        .file = "/var/log/app/app.log",
        .source = "src",
        .lookup = labels,
    };
    expect("/ecs/{ecs_cluster}/{ecs_task_family}", &v, TEMPLATE_GROUP, "/ecs/prod/shop");
    expect("{container_name}/{ecs_task_id}/{container_id_short}", &v, TEMPLATE_STREAM,
           "web/5d2f0c1e/0123456789ab");
    expect("{label:team}-{source}-{file_name}", &v, TEMPLATE_STREAM, "payments-src-app.log");
}

static void test_missing_values_become_the_placeholder(void **state)
{
    template_vars v = {.placeholder = "none"};
    expect("/ecs/{ecs_cluster}/{label:x}", &v, TEMPLATE_GROUP, "/ecs/none/none");
    template_vars d = {0};
    expect("{instance_id}", &d, TEMPLATE_STREAM, "unknown");
}

static void test_fallbacks_take_the_first_variable_with_a_value_or_the_text(void **state)
{
    template_vars plain = {.container_name = "redis", .container_id = "abcdef0123456789",
                           .lookup = labels};
    template_vars ecs = {.container_name = "ecs-shop-1-web-a1b2", .ecs_task_family = "shop",
                         .ecs_container_name = "web",
                         .ecs_task_arn = "arn:aws:ecs:us-east-1:1:task/prod/5d2f0c1e"};
    const char *g = "/ecs/{ecs_task_family|container_name}";
    expect(g, &plain, TEMPLATE_GROUP, "/ecs/redis");
    expect(g, &ecs, TEMPLATE_GROUP, "/ecs/shop");
    const char *st = "{ecs_container_name|container_name}/{ecs_task_id|container_id_short}";
    expect(st, &plain, TEMPLATE_STREAM, "redis/abcdef012345");
    expect(st, &ecs, TEMPLATE_STREAM, "web/5d2f0c1e");
    /* A literal last alternative, sanitised like the rest; labels first. */
    expect("/app/{label:team|shared logs}", &plain, TEMPLATE_GROUP, "/app/payments");
    expect("/app/{label:owner|shared logs}", &plain, TEMPLATE_GROUP, "/app/shared_logs");
    expect("{label:owner|ecs_cluster|}x", &plain, TEMPLATE_STREAM, "x");
    /* Nothing has a value and no text: the placeholder. */
    expect("{ecs_cluster|ecs_task_family}", &plain, TEMPLATE_STREAM, "unknown");
    /* A lone unknown name is not text (the configuration refuses it). */
    expect("{cluster}", &plain, TEMPLATE_STREAM, "unknown");
}

static void test_group_names_keep_only_allowed_characters(void **state)
{
    template_vars v = {.container_name = "we b:1*é"};
    expect("/a/{container_name}", &v, TEMPLATE_GROUP, "/a/we_b_1___");
    expect("{container_name}", &v, TEMPLATE_STREAM, "we b_1_é");
}

static void test_names_are_cut_to_512_bytes_on_a_character_boundary(void **state)
{
    char longname[700];
    for (size_t i = 0; i < sizeof longname - 1; i += 2) {
        longname[i] = (char)0xC3; /* é */
        longname[i + 1] = (char)0xA9;
    }
    longname[sizeof longname - 1] = 0;
    template_vars v = {.container_name = longname};
    _cleanup_free_ char *s = template_expand("x{container_name}", &v, TEMPLATE_STREAM);
    assert_true(strlen(s) <= 512);
    assert_int_equal(strlen(s), 511); /* "x" + 255 two-byte characters */
    _cleanup_free_ char *g = template_expand("{container_name}", &v, TEMPLATE_GROUP);
    assert_int_equal(strlen(g), 512);
}

static void test_known_variables(void **state)
{
    assert_true(template_known_variable("ecs_task_id"));
    assert_true(template_known_variable("label:com.example"));
    assert_true(template_known_variable("journal:_SYSTEMD_UNIT"));
    assert_false(template_known_variable("label:"));
    assert_false(template_known_variable("container"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_variables_expand_from_container_and_ecs_labels),
        cmocka_unit_test(test_missing_values_become_the_placeholder),
        cmocka_unit_test(test_fallbacks_take_the_first_variable_with_a_value_or_the_text),
        cmocka_unit_test(test_group_names_keep_only_allowed_characters),
        cmocka_unit_test(test_names_are_cut_to_512_bytes_on_a_character_boundary),
        cmocka_unit_test(test_known_variables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
