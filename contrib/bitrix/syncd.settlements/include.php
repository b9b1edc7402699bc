<?php
// syncd.settlements: Bitrix includes this file after registering the PSR-4 root Syncd\Settlements -> lib/
// (Bitrix\Main\Loader::includeModule). Nothing to do here: the classes in lib/ are autoloaded.
return true;
