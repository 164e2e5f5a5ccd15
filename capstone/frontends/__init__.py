"""What users run: the command line (``python -m capstone``)."""
