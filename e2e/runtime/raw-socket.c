/* Opens a raw IPv4 socket (ICMP) and closes it: what ping or a packet
 * sniffer dropped into a container would do first. Prints "opened", or the
 * error, and exits with 0 when the socket opened, else with the errno
 * (EPERM: 1), which CRI's exec passes on where it drops the output. Built
 * static, so that it runs in any image. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
  int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
  if (fd < 0) {
    int error = errno;
    printf("raw socket: %s\n", strerror(error));
    return error;
  }
  close(fd);
  printf("opened\n");
  return 0;
}
