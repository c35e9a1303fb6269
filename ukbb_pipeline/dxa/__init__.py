"""DXA science: the Total Body tissue and bone images of one exam, as arrays."""
