/*
 * Bulkhead's C shim over DPDK's static-inline fast-path functions.
 *
 * Every function here is a one-line forward to a DPDK static inline (or
 * thread-local) that Rust cannot call directly. They are called once per
 * burst, never per packet, so the call costs nothing measurable
 * (bindings/dpdk/README.md has the measurement).
 */
#ifndef BULKHEAD_SHIM_H
#define BULKHEAD_SHIM_H

#include <stddef.h>
#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

uint16_t bh_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                             struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t bh_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                             struct rte_mbuf **tx_pkts, uint16_t nb_pkts);
struct rte_mbuf *bh_rte_pktmbuf_alloc(struct rte_mempool *mp);
int bh_rte_pktmbuf_alloc_bulk(struct rte_mempool *pool,
                              struct rte_mbuf **mbufs, unsigned int count);
void bh_rte_pktmbuf_free(struct rte_mbuf *m);
char *bh_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *bh_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *bh_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int bh_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
void bh_rte_pktmbuf_reset(struct rte_mbuf *m);
unsigned int bh_rte_ring_enqueue_burst(struct rte_ring *r,
                                       void *const *obj_table,
                                       unsigned int n);
unsigned int bh_rte_ring_dequeue_burst(struct rte_ring *r, void **obj_table,
                                       unsigned int n);
unsigned int bh_rte_ring_count(const struct rte_ring *r);
unsigned int bh_rte_lcore_id(void);
int bh_rte_errno(void);
uint64_t bh_rte_rdtsc(void);

/* Values of function-like macros bindgen cannot evaluate (read at configure time). */
uint64_t bh_rss_hf_ip_tcp_udp(void);   /* RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP */
uint64_t bh_rx_offload_rss_hash(void); /* RTE_ETH_RX_OFFLOAD_RSS_HASH */

/* Offsets of the rte_mbuf fields that Rust reads directly, as the C compiler
 * sees them; the Rust layout tests compare them with bindgen's struct. */
struct bh_mbuf_layout {
    size_t size;
    size_t buf_addr;
    size_t data_off;
    size_t refcnt;
    size_t nb_segs;
    size_t port;
    size_t ol_flags;
    size_t packet_type;
    size_t pkt_len;
    size_t data_len;
    size_t vlan_tci;
    size_t hash_rss;
    size_t buf_len;
    size_t pool;
};
void bh_mbuf_layout_get(struct bh_mbuf_layout *out);

#endif
