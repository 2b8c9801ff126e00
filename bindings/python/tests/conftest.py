import os
import sys

# import the package from this source tree
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
