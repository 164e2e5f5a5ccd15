"""Small tools every stage uses: argument checks, atomic files, vector helpers, a progress bar."""
