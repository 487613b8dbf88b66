"""Fleet check: one artifact against many kernels (``sigbpf check``), fast and in bounded memory."""
