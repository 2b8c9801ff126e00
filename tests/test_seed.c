/* The seed model as the README teaches it: examples/seed_lstm.c, run as a
 * process on the committed sample (data/spam-sample, 270 training and 30
 * validation messages) for 5 epochs, must learn (the loss falls, training
 * accuracy passes 0.9, validation accuracy beats always answering "ham",
 * 20 of 30); and README.md must show exactly that file. Tests run from
 * tests/, so the repository is "..". */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include "testutil.h"

START_TEST(seed_lstm_learns) {
    enum { EPOCHS = 5 };
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s/seed_lstm ../data/spam-sample %d 2>&1", tu_bin_dir(), EPOCHS);
    FILE *p = popen(cmd, "r");
    ck_assert_ptr_nonnull(p);
    char line[512], out[8192] = "";
    double loss[EPOCHS], acc[EPOCHS], val_loss[EPOCHS], val_acc[EPOCHS];
    int epochs = 0;
    while (fgets(line, sizeof line, p)) {
        strncat(out, line, sizeof out - strlen(out) - 1);
        int e, of;
        if (epochs < EPOCHS &&
            sscanf(line, "epoch %d/%d: loss %lf - accuracy %lf - val_loss %lf - val_accuracy %lf", &e, &of,
                   &loss[epochs], &acc[epochs], &val_loss[epochs], &val_acc[epochs]) == 6) {
            ck_assert_int_eq(e, epochs + 1);
            ck_assert_int_eq(of, EPOCHS);
            epochs++;
        }
    }
    int status = pclose(p);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "seed_lstm failed (%s):\n%s", cmd, out);
    ck_assert_msg(epochs == EPOCHS, "%d epoch lines instead of %d:\n%s", epochs, EPOCHS, out);
    int last = EPOCHS - 1;
    ck_assert_msg(loss[last] < 0.6 * loss[0], "the loss went from %.4f to %.4f only:\n%s", loss[0], loss[last], out);
    ck_assert_msg(acc[last] >= 0.9, "training accuracy %.4f after %d epochs:\n%s", acc[last], EPOCHS, out);
    ck_assert_msg(val_acc[last] >= 0.75, "validation accuracy %.4f, no better than always 'ham' (0.6667):\n%s",
                  val_acc[last], out);
    ck_assert_msg(isfinite(val_loss[last]), "%s", out);
}
END_TEST

START_TEST(readme_shows_the_whole_program) {
    char *readme = tu_read_text("../README.md"), *program = tu_read_text("../examples/seed_lstm.c");
    ck_assert_msg(readme && program, "cannot read ../README.md or ../examples/seed_lstm.c");
    size_t n = strlen(program);
    char *block = malloc(n + 16);
    ck_assert_ptr_nonnull(block);
    snprintf(block, n + 16, "```c\n%s```\n", program);
    ck_assert_msg(strstr(readme, block) != NULL,
                  "README.md's seed model section is not examples/seed_lstm.c: paste the file between ```c and ```");
    free(block);
    free(program);
    free(readme);
}
END_TEST

Suite *suite_seed(void) {
    Suite *s = suite_create("seed");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 600); /* 5 epochs of the full-size model; minutes under the sanitizers */
    tcase_add_test(tc, readme_shows_the_whole_program);
    tcase_add_test(tc, seed_lstm_learns);
    suite_add_tcase(s, tc);
    return s;
}
