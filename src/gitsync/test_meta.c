/* test_meta.c: the mirror's metadata file (.sigil at the tree's root):
 * what is recorded, the text, escapes, and errors naming the line. */
#include "config.h"

#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gitsync_i.h"

static char *text_of(const sg_gitmeta *m)
{
	char *t = NULL;
	size_t len = 0;

	assert_int_equal(sg_gitmeta_serialize(m, &t, &len), 0);
	assert_int_equal(strlen(t), len);
	return t;
}

/* the records' lines, without the comment header */
static const char *body(const char *t)
{
	while (*t == '#')
		t = strchr(t, '\n') + 1;
	return t;
}

static void test_defaults_are_not_recorded(void **state)
{
	sg_gitmeta m;
	char *t;

	(void)state;
	sg_gitmeta_init(&m);
	assert_int_equal(sg_gitmeta_set(&m, "a.conf", SG_TYPE_FILE, 0644, 0, 0, NULL, 0), 0);
	assert_int_equal(sg_gitmeta_set(&m, "run.sh", SG_TYPE_FILE, 0755, 0, 0, NULL, 0), 0);
	assert_int_equal(sg_gitmeta_set(&m, "l", SG_TYPE_SYMLINK, 0777, 0, 0, NULL, 0), 0);
	assert_null(sg_gitmeta_get(&m, "a.conf"));
	/* a directory is always recorded: empty ones must survive */
	assert_int_equal(sg_gitmeta_set(&m, "etc", SG_TYPE_DIR, 0755, 0, 0, NULL, 0), 1);
	assert_int_equal(sg_gitmeta_set(&m, "etc", SG_TYPE_DIR, 0755, 0, 0, NULL, 0), 0);
	t = text_of(&m);
	assert_string_equal(body(t), "d 0755 0 0 etc\n");
	free(t);
	sg_gitmeta_clear(&m);
}

static void test_modes_owners_xattrs_round_trip(void **state)
{
	sg_gitmeta m, back;
	sg_xattr x[2] = {{"user.color", "red", 3}, {"user.empty", "", 0}};
	char *t, *t2, err[80] = "";
	const struct sg_gitmeta_ent *e;

	(void)state;
	sg_gitmeta_init(&m);
	sg_gitmeta_init(&back);
	assert_int_equal(sg_gitmeta_set(&m, "etc/shadow", SG_TYPE_FILE, 0600, 0, 42, NULL, 0), 1);
	assert_int_equal(sg_gitmeta_set(&m, "etc/app.conf", SG_TYPE_FILE, 0644, 0, 0, x, 2), 1);
	assert_int_equal(
	    sg_gitmeta_set(&m, "a b\\c\nd", SG_TYPE_SYMLINK, 0777, 1000, 1000, NULL, 0), 1);
	t = text_of(&m);
	assert_string_equal(body(t), "l 0777 1000 1000 a b\\\\c\\nd\n"
	                             "x user.color 726564 etc/app.conf\n"
	                             "x user.empty - etc/app.conf\n"
	                             "f 0600 0 42 etc/shadow\n");
	assert_int_equal(sg_gitmeta_parse(&back, t, strlen(t), err, sizeof(err)), 0);
	e = sg_gitmeta_get(&back, "a b\\c\nd");
	assert_non_null(e);
	assert_int_equal(e->type, SG_TYPE_SYMLINK);
	assert_int_equal(e->uid, 1000);
	e = sg_gitmeta_get(&back, "etc/app.conf");
	assert_non_null(e);
	assert_int_equal(e->nx, 2);
	t2 = text_of(&back);
	assert_string_equal(t, t2);
	/* back to defaults: the record goes */
	assert_int_equal(sg_gitmeta_set(&m, "etc/shadow", SG_TYPE_FILE, 0644, 0, 0, NULL, 0), 1);
	assert_null(sg_gitmeta_get(&m, "etc/shadow"));
	free(t);
	free(t2);
	sg_gitmeta_clear(&m);
	sg_gitmeta_clear(&back);
}

static void test_remove_subtree(void **state)
{
	sg_gitmeta m;

	(void)state;
	sg_gitmeta_init(&m);
	/* enough entries to make the table grow */
	for (int i = 0; i < 300; i++) {
		char p[32];
		snprintf(p, sizeof(p), "d/%03d", i);
		assert_int_equal(sg_gitmeta_set(&m, p, SG_TYPE_DIR, 0700, 0, 0, NULL, 0), 1);
	}
	assert_int_equal(sg_gitmeta_set(&m, "d", SG_TYPE_DIR, 0755, 0, 0, NULL, 0), 1);
	assert_int_equal(sg_gitmeta_set(&m, "dd", SG_TYPE_DIR, 0755, 0, 0, NULL, 0), 1);
	assert_int_equal(sg_gitmeta_remove(&m, "d", 1, NULL, NULL), 1);
	assert_null(sg_gitmeta_get(&m, "d"));
	assert_null(sg_gitmeta_get(&m, "d/150"));
	assert_non_null(sg_gitmeta_get(&m, "dd")); /* a sibling with the same prefix stays */
	assert_int_equal(sg_gitmeta_remove(&m, "d", 1, NULL, NULL), 0);
	sg_gitmeta_clear(&m);
}

static void expect_bad(const char *text, const char *want)
{
	sg_gitmeta m;
	char err[80] = "";

	sg_gitmeta_init(&m);
	assert_int_equal(sg_gitmeta_parse(&m, text, strlen(text), err, sizeof(err)), -EINVAL);
	assert_string_equal(err, want);
	assert_null(sg_gitmeta_get(&m, "a"));
	sg_gitmeta_clear(&m);
}

static void test_bad_files_name_the_line(void **state)
{
	(void)state;
	expect_bad("# x\nd 0755 0 0 a\nq 0755 0 0 b\n", "line 3: unknown record type");
	expect_bad("d 9999 0 0 a\n", "line 1: bad mode");
	expect_bad("d 0755 x 0 a\n", "line 1: bad uid");
	expect_bad("d 0755 0 0\n", "line 1: too few fields");
	expect_bad("d 0755 0 0 ../etc\n", "line 1: bad path");
	expect_bad("d 0755 0 0 /etc\n", "line 1: bad path");
	expect_bad("d 0755 0 0 a//b\n", "line 1: bad path");
	expect_bad("d 0755 0 0 a\\q\n", "line 1: bad path");
	expect_bad("x trusted.a 00 a\n", "line 1: bad attribute name");
	expect_bad("x user.a 0g a\n", "line 1: bad attribute value");
	expect_bad("x user.a 012 a\n", "line 1: bad attribute value");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults_are_not_recorded),
	    cmocka_unit_test(test_modes_owners_xattrs_round_trip),
	    cmocka_unit_test(test_remove_subtree),
	    cmocka_unit_test(test_bad_files_name_the_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
