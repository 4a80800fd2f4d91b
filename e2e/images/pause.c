/* The pod sandbox's process: holds the pod's namespaces, reaps zombies,
 * exits on SIGINT/SIGTERM. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int sig) { (void)sig; _exit(0); }
static void on_child(int sig) {
	(void)sig;
	while (waitpid(-1, NULL, WNOHANG) > 0) {
	}
}

int main(void) {
	if (getpid() != 1) {
		/* Not pid 1: still fine, but say so, like upstream's pause. */
		static const char msg[] = "pause: warning: not pid 1\n";
		(void)!write(2, msg, sizeof msg - 1);
	}
	signal(SIGINT, on_term);
	signal(SIGTERM, on_term);
	signal(SIGCHLD, on_child);
	for (;;)
		pause();
}
