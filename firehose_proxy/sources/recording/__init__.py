"""Recording the firehose's upstream frames (``RECORD_DIR``) and playing a recording instead of a live source
(``REPLAY``): the file format (pure), the writer thread and the paced player."""
