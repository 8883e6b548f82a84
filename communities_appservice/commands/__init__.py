"""`!community …` commands: the framework (`framework`, `parse`, `args`) and one module per
feature, named as the feature is in `features/`. `index.py` imports them all."""
