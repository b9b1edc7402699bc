<?php
$MESS['SYNCD_SETTLEMENTS_PAGE_SIZE'] = 'Оплат на странице';
