// Holds N live user namespaces for the inventory benchmark: forks N
// children, each unshare(CLONE_NEWUSER)s and sleeps; the parent writes each
// one's uid/gid maps (host ids 1000000 + i*65536, 65536 of them) from the
// initial namespace, prints "ready", and on EOF of stdin (or its own death:
// PR_SET_PDEATHSIG) every child goes.
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static int write_file(pid_t pid, const char *name, const char *data) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = write(fd, data, strlen(data));
  close(fd);
  return n == (ssize_t)strlen(data) ? 0 : -1;
}

int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1000;
  pid_t *pids = calloc((size_t)n, sizeof *pids);
  if (pids == NULL) return 1;
  int made = 0;
  for (int i = 0; i < n; i++) {
    int ready[2];
    if (pipe2(ready, O_CLOEXEC) < 0) break;
    pid_t pid = fork();
    if (pid < 0) break;
    if (pid == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() == 1) _exit(1);
      char c = unshare(CLONE_NEWUSER) == 0 ? 'y' : 'n';
      if (write(ready[1], &c, 1) != 1) _exit(1);
      for (;;) pause();
    }
    close(ready[1]);
    char c = 0;
    if (read(ready[0], &c, 1) != 1 || c != 'y') {
      close(ready[0]);
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      break;
    }
    close(ready[0]);
    char map[64];
    snprintf(map, sizeof map, "0 %lu 65536\n", 1000000UL + (unsigned long)i * 65536UL);
    if (write_file(pid, "uid_map", map) < 0 || write_file(pid, "gid_map", map) < 0) {
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      break;
    }
    pids[made++] = pid;
  }
  printf("ready %d\n", made);
  fflush(stdout);
  char buf[64];
  while (read(0, buf, sizeof buf) > 0) {
  }
  for (int i = 0; i < made; i++) kill(pids[i], SIGKILL);
  for (int i = 0; i < made; i++) waitpid(pids[i], NULL, 0);
  free(pids);
  return made == n ? 0 : 1;
}
