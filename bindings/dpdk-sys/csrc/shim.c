/* One-line forwards of DPDK static inlines; see shim.h. */
#include "shim.h"

#include <stddef.h>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

uint16_t bh_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
                             struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{
    return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts);
}

uint16_t bh_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
                             struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{
    return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts);
}

struct rte_mbuf *bh_rte_pktmbuf_alloc(struct rte_mempool *mp)
{
    return rte_pktmbuf_alloc(mp);
}

int bh_rte_pktmbuf_alloc_bulk(struct rte_mempool *pool,
                              struct rte_mbuf **mbufs, unsigned int count)
{
    return rte_pktmbuf_alloc_bulk(pool, mbufs, count);
}

void bh_rte_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

char *bh_rte_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
    return rte_pktmbuf_append(m, len);
}

char *bh_rte_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
    return rte_pktmbuf_prepend(m, len);
}

char *bh_rte_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{
    return rte_pktmbuf_adj(m, len);
}

int bh_rte_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{
    return rte_pktmbuf_trim(m, len);
}

void bh_rte_pktmbuf_reset(struct rte_mbuf *m) { rte_pktmbuf_reset(m); }

unsigned int bh_rte_ring_enqueue_burst(struct rte_ring *r,
                                       void *const *obj_table,
                                       unsigned int n)
{
    return rte_ring_enqueue_burst(r, obj_table, n, NULL);
}

unsigned int bh_rte_ring_dequeue_burst(struct rte_ring *r, void **obj_table,
                                       unsigned int n)
{
    return rte_ring_dequeue_burst(r, obj_table, n, NULL);
}

unsigned int bh_rte_ring_count(const struct rte_ring *r)
{
    return rte_ring_count(r);
}

unsigned int bh_rte_lcore_id(void) { return rte_lcore_id(); }

int bh_rte_errno(void) { return rte_errno; }

uint64_t bh_rte_rdtsc(void) { return rte_rdtsc(); }

uint64_t bh_rss_hf_ip_tcp_udp(void)
{
    return RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP;
}

uint64_t bh_rx_offload_rss_hash(void) { return RTE_ETH_RX_OFFLOAD_RSS_HASH; }

void bh_mbuf_layout_get(struct bh_mbuf_layout *out)
{
    out->size = sizeof(struct rte_mbuf);
    out->buf_addr = offsetof(struct rte_mbuf, buf_addr);
    out->data_off = offsetof(struct rte_mbuf, data_off);
    out->refcnt = offsetof(struct rte_mbuf, refcnt);
    out->nb_segs = offsetof(struct rte_mbuf, nb_segs);
    out->port = offsetof(struct rte_mbuf, port);
    out->ol_flags = offsetof(struct rte_mbuf, ol_flags);
    out->packet_type = offsetof(struct rte_mbuf, packet_type);
    out->pkt_len = offsetof(struct rte_mbuf, pkt_len);
    out->data_len = offsetof(struct rte_mbuf, data_len);
    out->vlan_tci = offsetof(struct rte_mbuf, vlan_tci);
    out->hash_rss = offsetof(struct rte_mbuf, hash.rss);
    out->buf_len = offsetof(struct rte_mbuf, buf_len);
    out->pool = offsetof(struct rte_mbuf, pool);
}
