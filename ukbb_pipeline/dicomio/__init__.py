"""Reading bulk zips and the DICOM members inside them."""
