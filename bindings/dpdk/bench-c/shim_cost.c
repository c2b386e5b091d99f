/*
 * Shim cost, C side: the same loop as examples/shim_cost.rs, calling DPDK's static inlines
 * (rte_eth_rx_burst, rte_pktmbuf_alloc_bulk, rte_eth_tx_burst) directly.
 * Usage: shim_cost_c [rx|tx] [bursts] [--huge]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#define BURST 32
#define WARMUP 10000ULL

static uint64_t run(int rx, uint16_t port, struct rte_mempool *mp, uint64_t n)
{
    struct rte_mbuf *pkts[BURST];
    uint64_t packets = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (rx) {
            uint16_t got = rte_eth_rx_burst(port, 0, pkts, BURST);
            packets += got;
            rte_pktmbuf_free_bulk(pkts, got);
        } else {
            if (rte_pktmbuf_alloc_bulk(mp, pkts, BURST) != 0) {
                fprintf(stderr, "alloc_bulk failed\n");
                exit(1);
            }
            uint16_t sent = rte_eth_tx_burst(port, 0, pkts, BURST);
            packets += sent;
            rte_pktmbuf_free_bulk(pkts + sent, BURST - sent);
        }
    }
    return packets;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "rx";
    uint64_t bursts = argc > 2 ? strtoull(argv[2], NULL, 10) : 2000000ULL;
    int huge = argc > 3 && strcmp(argv[3], "--huge") == 0;
    int rx = strcmp(mode, "rx") == 0;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "--file-prefix=bh-shim-cost-c-%d", (int)getpid());
    char *eal_argv[16];
    int n = 0;
    eal_argv[n++] = "shim_cost_c";
    eal_argv[n++] = "-l";
    eal_argv[n++] = "0";
    eal_argv[n++] = "--no-pci";
    eal_argv[n++] = "--no-telemetry";
    eal_argv[n++] = "--log-level=warning";
    eal_argv[n++] = prefix;
    eal_argv[n++] = "--vdev=net_null0";
    if (!huge) {
        eal_argv[n++] = "--no-huge";
        eal_argv[n++] = "-m";
        eal_argv[n++] = "512";
    }
    if (rte_eal_init(n, eal_argv) < 0) {
        fprintf(stderr, "rte_eal_init: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    struct rte_mempool *mp = rte_pktmbuf_pool_create("shim_cost", 8191, 256, 0,
                                                     RTE_MBUF_DEFAULT_BUF_SIZE, rte_socket_id());
    uint16_t port;
    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof conf);
    if (mp == NULL || rte_eth_dev_get_port_by_name("net_null0", &port) != 0 ||
        rte_eth_dev_configure(port, 1, 1, &conf) != 0 ||
        rte_eth_rx_queue_setup(port, 0, 1024, rte_eth_dev_socket_id(port), NULL, mp) != 0 ||
        rte_eth_tx_queue_setup(port, 0, 1024, rte_eth_dev_socket_id(port), NULL) != 0 ||
        rte_eth_dev_start(port) != 0) {
        fprintf(stderr, "setup failed: %s\n", rte_strerror(rte_errno));
        return 1;
    }
    run(rx, port, mp, WARMUP);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t packets = run(rx, port, mp, bursts);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double ns = (t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec);
    printf("c    %s burst=%d bursts=%llu packets=%llu hugepages=%s ns/packet=%.2f\n", mode, BURST,
           (unsigned long long)bursts, (unsigned long long)packets, huge ? "yes" : "no",
           ns / (double)(packets ? packets : 1));
    rte_eth_dev_stop(port);
    rte_eth_dev_close(port);
    rte_eal_cleanup();
    return 0;
}
