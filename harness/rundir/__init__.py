"""Run folders on disk: the files a run leaves and the one way to read and write them."""
