/* Standalone `dev-cluster` for the test setup: the same code as `kgate dev-cluster`, linked
 * statically against a librdkafka other than Debian's (2.12 from node-rdkafka's tarball) so the
 * integration tests get a modern-protocol broker next to Debian's 2.0.2 one. */
#include "tools/kg_devcluster.h"

int main(int argc, char **argv)
{
    return kg_devcluster_main(argc, argv);
}
