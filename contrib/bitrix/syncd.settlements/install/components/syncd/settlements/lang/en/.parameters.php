<?php
$MESS['SYNCD_SETTLEMENTS_PAGE_SIZE'] = 'Payments per page';
