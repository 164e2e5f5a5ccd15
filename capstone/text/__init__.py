"""Caption statistics: tokens and IDF (the embeddings made from them: `capstone.embeddings`)."""
