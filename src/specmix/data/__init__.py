"""Data: text corpora and the char tokenizer (``corpus``, NumPy only), synthetic tasks
(``tasks``, NumPy only) and torch batches of either (``batches``).

Nothing is imported eagerly, so the NumPy reference can use the corpus without loading torch.
"""
