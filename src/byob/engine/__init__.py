"""One transfer: plan window → read → encode → upload → manifest → commit."""
