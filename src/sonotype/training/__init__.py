"""Training: labelled windows from files and annotation tables (``dataset``), scores (``metrics``), augmentation
(``augment``), batches from the frame cache (``framebank``), self-supervised next-frame training with DDP
(``train``), distillation from a pretrained backend (``distill``), detector fine-tuning (``finetune``)."""
