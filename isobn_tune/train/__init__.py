"""One trial: its settings (recipe), the model with its [CLS] normaliser (IsoBN, ...), the training
loop, GLUE metrics, the isotropy analysis and the files of a trial checkpoint."""
