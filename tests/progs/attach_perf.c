/* A perf_event program: counts the samples of the event given with --perf-event (slot 0). */
#include "attach_common.h"

SEC("perf_event")
int on_sample(struct bpf_perf_event_data *ctx)
{
	bump(0);
	return 0;
}
