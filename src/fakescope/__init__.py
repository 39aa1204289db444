"""fakescope: tell AI-generated from real images, and adversarially attacked from clean ones."""

__version__ = "0.1.0"
