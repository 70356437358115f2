/* kg_demo — `kgate demo`: two embedded clusters, kgate, clients, a failover and a failback. */
#ifndef KG_DEMO_H
#define KG_DEMO_H

int kg_demo_main(int argc, char **argv);

#endif
