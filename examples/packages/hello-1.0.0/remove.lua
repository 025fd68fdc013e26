-- Take hello off PATH. A missing file is not an error: removal may run twice.
os.remove(path_join(packets_bin_dir, "hello"))
