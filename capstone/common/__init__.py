"""Small tools every stage uses: argument checks, atomic files, locks, vector helpers, a progress
bar."""
