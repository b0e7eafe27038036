/* http-origin: a tiny HTTP/1.x origin for the kubegost cluster tests.
 * Listens on 0.0.0.0:$PORT (default 8080) inside its pod and answers every
 * request with 200 and the body "$ORIGIN_BODY\n" (default "kubegost-origin"). With
 * LOG_REQUESTS set, every request line goes to stderr.
 * With REQUIRE_PEER=a.b.c.d:port it first connects once to that IPv4
 * address and exits with status 3 if that fails (used to prove that a native
 * sidecar was already listening when the app container started).
 * One connection at a time, 5 s socket timeouts, exits on SIGTERM/SIGINT.
 * Built with gcc -static; no libc name resolution is used. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static void die(int s) { (void)s; _exit(0); }

int main(void) {
  const char *p = getenv("PORT");
  const char *body = getenv("ORIGIN_BODY");
  int port = p ? atoi(p) : 8080;
  if (!body) body = "kubegost-origin";
  signal(SIGTERM, die); signal(SIGINT, die); signal(SIGPIPE, SIG_IGN);
  const char *peer = getenv("REQUIRE_PEER");
  if (peer && *peer) {
    char host[64]; int pport = 0;
    struct sockaddr_in pa; memset(&pa, 0, sizeof pa);
    if (sscanf(peer, "%63[0-9.]:%d", host, &pport) != 2 || inet_pton(AF_INET, host, &pa.sin_addr) != 1) {
      fprintf(stderr, "bad REQUIRE_PEER %s\n", peer); return 2;
    }
    pa.sin_family = AF_INET; pa.sin_port = htons((unsigned short)pport);
    int ps = socket(AF_INET, SOCK_STREAM, 0);
    if (ps < 0 || connect(ps, (struct sockaddr *)&pa, sizeof pa) < 0) {
      perror("REQUIRE_PEER connect"); return 3;
    }
    close(ps);
    fprintf(stderr, "REQUIRE_PEER %s reachable at start\n", peer);
  }
  int s = socket(AF_INET, SOCK_STREAM, 0);
  if (s < 0) { perror("socket"); return 1; }
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a; memset(&a, 0, sizeof a);
  a.sin_family = AF_INET; a.sin_port = htons((unsigned short)port); a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); return 1; }
  if (listen(s, 64) < 0) { perror("listen"); return 1; }
  fprintf(stderr, "http-origin listening on :%d\n", port);
  for (;;) {
    int c = accept(s, 0, 0);
    if (c < 0) continue;
    struct timeval tv = {5, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char buf[8192]; size_t n = 0;
    while (n < sizeof buf - 1) {           /* read until the end of the headers */
      ssize_t r = read(c, buf + n, sizeof buf - 1 - n);
      if (r <= 0) break;
      n += (size_t)r; buf[n] = 0;
      if (strstr(buf, "\r\n\r\n") || strstr(buf, "\n\n")) break;
    }
    if (getenv("LOG_REQUESTS")) {           /* the request line, for tests that read the log */
      char *eol = strpbrk(buf, "\r\n");
      if (eol) *eol = 0;
      fprintf(stderr, "request: %s\n", buf);
    }
    char resp[9000];
    int len = snprintf(resp, sizeof resp,
                       "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n"
                       "Connection: close\r\n\r\n%s\n", strlen(body) + 1, body);
    if (len > 0 && (size_t)len < sizeof resp) { ssize_t w = write(c, resp, (size_t)len); (void)w; }
    close(c);
  }
}
