"""Everything fgaug reads and writes: the Cityscapes label table, reader, HDF5 cache, toy world, writer."""
