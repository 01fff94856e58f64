"""Training recipes: plain scripts with typed configs (torchtune style) that log to the platform's tracking.

- ``tokenizer``: byte-level BPE tokenizers trained with ``tokenizers`` and saved for ``transformers``.
- ``corpus``: documents from dataset versions or JSONL files, the held-out split, token packing.
- ``checkpoint``: self-describing, atomically written checkpoints and finding the latest complete one.
- ``baselines``: unigram and bigram language models, the bar a trained model has to clear.
- ``reference``: the reference pretraining recipe (``llmops train reference``).
"""
