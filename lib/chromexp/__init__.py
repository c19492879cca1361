"""chromexp: predicting gene expression from histone marks (Murphy et al. 2024, reproduced and extended).

The library behind the notebooks in ``notebooks/``: one idea per module (``config``, ``paths``,
``io``, ``signal``, ``dataset``, ``models``, ``train``, ``metrics``, ``plots``, ...). Importing the
package has no side effects; import the module you need.
"""

__version__ = "0.1.0"
