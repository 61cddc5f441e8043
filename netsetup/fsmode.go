package netsetup

import "os"

type fsMode = os.FileMode
