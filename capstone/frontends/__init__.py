"""What users run: the command line (``python -m capstone``) and the web app (``serve``)."""
